"""Which distributions a cloned venv must reinstall (pure)."""

from __future__ import annotations

import json

from deployer.host.install import changed_wheels, dist_name


def test_changed_wheels_by_name_or_bytes(tmp_path):
    seed = tmp_path / "manifest.json"
    seed.write_text(
        json.dumps(
            {
                "files": {
                    "wheels/a-1.0-py3-none-any.whl": {"sha256": "a" * 64},
                    "wheels/b-1.0-py3-none-any.whl": {"sha256": "b" * 64},
                    "engine.pyz": {"sha256": "e" * 64},
                }
            }
        )
    )
    new = {
        "files": {
            "wheels/a-1.0-py3-none-any.whl": {"sha256": "a" * 64},  # unchanged
            "wheels/b-1.0-py3-none-any.whl": {"sha256": "c" * 64},  # same name, other bytes
            "wheels/app-2.0-py3-none-any.whl": {"sha256": "d" * 64},  # new version
            "engine.pyz": {"sha256": "f" * 64},
        }
    }
    assert changed_wheels(seed, new) == ["wheels/app-2.0-py3-none-any.whl", "wheels/b-1.0-py3-none-any.whl"]
    assert [dist_name(w) for w in changed_wheels(tmp_path / "missing.json", new)] == ["a", "app", "b"]
