"""The host engine on a temporary base path, with real venvs, real wheels, a real service."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from deployer.errors import HealthError, HostError, InstallError
from deployer.host.activate import EnvChange
from deployer.host.state import History, get_state, rollback_target
from tests.host.artifacts import corrupt_wheel
from tests.host.conftest import health

pytestmark = pytest.mark.slow
SECRET1, SECRET2 = "s3cr3t-token-one", "s3cr3t-token-two"


def deploy(host, build, secret=SECRET1, env=True) -> dict:
    engine = host.engine()
    engine.acquire(release=build.manifest["release_id"])
    try:
        engine.preflight(build.manifest)
        rid = engine.stage(str(build.path))
        return engine.activate(rid, EnvChange(text=host.env_text(secret) if env else None))
    finally:
        engine.release_lock()


def test_deploy_redeploy_hotfix_and_rollback_by_activation_history(host, variant_builds):
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    base = host.base
    r1 = deploy(host, v1, SECRET1)
    id1 = v1.manifest["release_id"]
    assert r1["result"] == "success" and r1["healthy_s"] > 0 and r1["gate_s"] >= r1["healthy_s"]
    assert os.readlink(base / "current") == f"releases/{id1}"
    rel1 = base / "releases" / id1
    assert get_state(rel1) == "good" and (rel1 / "venv" / "bin" / "python").exists()
    assert health(host) == {"status": "ok", "version": v1.manifest["version"]}
    # wheels live once, content-addressed; shared dirs link into shared/, .env to its own place
    wheel = next(n for n in v1.manifest["files"] if "ntgcalls" in n)
    sha = v1.manifest["files"][wheel]["sha256"]
    assert (base / "cache" / "members" / sha / Path(wheel).name).is_file()
    assert not list((base / "releases").glob(f"{id1}/wheels"))
    assert os.path.realpath(rel1 / "sessions") == str(base / "shared" / "sessions")
    assert os.path.realpath(rel1 / ".env") == str(host.env_path)
    assert stat.S_IMODE(host.env_path.stat().st_mode) == 0o600
    (base / "shared" / "sessions" / "bot.session").write_text("session state")

    # a code-only change, with a new .env: the old one is backed up, 0600
    r2 = deploy(host, v2, SECRET2)
    id2 = v2.manifest["release_id"]
    # the new venv started as a hardlinked copy of the live one: unchanged dependencies
    # (and their byte-code) are shared, the app is new, scripts point at the new venv
    assert "from a hardlinked copy of the live venv" in host.output()
    site = "venv/lib/python3.11/site-packages"
    shared = "pyrogram/__pycache__/__init__.cpython-311.pyc"
    assert os.path.samefile(rel1 / site / shared, base / "releases" / id2 / site / shared)
    app_pyc = base / "releases" / id2 / site / "tg_video_streamer" / "__pycache__"
    assert (app_pyc / "health.cpython-311.pyc").is_file(), "the new app is byte-compiled"
    assert not os.path.samefile(
        app_pyc / "health.cpython-311.pyc",
        rel1 / site / "tg_video_streamer/__pycache__/health.cpython-311.pyc",
    )
    script = (base / "releases" / id2 / "venv" / "bin" / "idna").read_text()  # a dependency's
    assert f"releases/{id2}/venv/bin/python" in script and f"releases/{id1}/" not in script
    assert f"releases/{id1}/venv/bin/python" in (rel1 / "venv" / "bin" / "idna").read_text()
    assert r2["from"] == id1 and r2["to"] == id2 and r2["result"] == "success"
    assert health(host)["version"] == v2.manifest["version"]
    backups = list((base / "secrets").glob(".env.bak.*"))
    assert len(backups) == 1 and SECRET1 in backups[0].read_text()
    assert stat.S_IMODE(backups[0].stat().st_mode) == 0o600
    assert SECRET2 in host.env_path.read_text()
    assert (base / "releases" / id2 / "sessions" / "bot.session").read_text() == "session state"

    # hotfix: deploy the OLDER artifact again; the host re-checks it instead of rebuilding
    host.lines.clear()
    deploy(host, v1, SECRET1)
    assert "already on the host" in host.output()
    assert os.readlink(base / "current") == f"releases/{id1}"
    # rollback returns to the release that was live before (v2), not an id-order neighbour
    engine = host.engine()
    assert rollback_target(engine.layout, engine.history) == id2
    engine.acquire()
    result = engine.rollback()
    engine.release_lock()
    assert result["action"] == "rollback" and result["to"] == id2
    assert health(host)["version"] == v2.manifest["version"]
    assert SECRET2 in host.env_path.read_text(), "rollback restores that release's .env"
    rows = {r["id"]: r for r in engine.releases()}
    assert rows[id2]["current"] and rows[id1]["state"] == "good" and rows[id2]["activated_at"]

    # secrets never in events, history or saved journal excerpts
    everything = host.output() + (base / "log" / "deploys.jsonl").read_text()
    everything += "".join(p.read_text() for p in (base / "log").rglob("*.txt"))
    assert SECRET1 not in everything and SECRET2 not in everything


def test_crash_at_start_switches_back_and_marks_bad(host, variant_builds):
    v1, crash = variant_builds("v1"), variant_builds("crash")
    deploy(host, v1, SECRET1)
    with pytest.raises(HealthError) as e:
        deploy(host, crash, SECRET2)
    assert "switched back to " + v1.manifest["release_id"] in str(e.value)
    base, crash_id = host.base, crash.manifest["release_id"]
    assert os.readlink(base / "current") == f"releases/{v1.manifest['release_id']}"
    assert get_state(base / "releases" / crash_id) == "bad"
    assert health(host)["version"] == v1.manifest["version"]
    assert SECRET1 in host.env_path.read_text(), ".env restored on revert"
    excerpt = "".join(p.read_text() for p in (base / "log" / crash_id).glob("journal-*.txt"))
    assert "crash at start" in excerpt and SECRET2 not in excerpt
    last = list(History(host.engine().layout).records())[-1]
    assert last["result"] == "reverted" and last["to"] == crash_id and "reason" in last
    engine = host.engine()
    assert rollback_target(engine.layout, engine.history) is None, "never a bad release"
    with pytest.raises(HostError, match="marked bad"):
        engine.rollback(to=crash_id)


def test_failed_install_keeps_the_old_release_live(host, variant_builds, tmp_path):
    v1 = variant_builds("v1")
    deploy(host, v1, SECRET1)
    broken = corrupt_wheel(v1.path, tmp_path / "broken.tar", "aiohttp")
    engine = host.engine()
    engine.acquire()
    with pytest.raises(InstallError) as e:
        engine.stage(str(broken.path))
    engine.release_lock()
    assert "installing dependencies failed" in str(e.value)
    bad_id = broken.manifest["release_id"]
    assert get_state(host.base / "releases" / bad_id) == "bad"
    assert (host.base / "log" / bad_id / "install.log").read_text().strip()
    assert os.readlink(host.base / "current") == f"releases/{v1.manifest['release_id']}"
    assert health(host)["version"] == v1.manifest["version"]


def test_missing_required_env_key_refused_before_the_switch(host, variant_builds):
    v1 = variant_builds("v1")
    engine = host.engine()
    engine.acquire()
    rid = engine.stage(str(v1.path))
    with pytest.raises(HostError, match="lacks required keys: HTTP_PORT"):
        engine.activate(rid, EnvChange(text="STATE_DIR=/x\n"))
    engine.release_lock()
    assert not (host.base / "current").exists()
    assert get_state(host.base / "releases" / rid) == "staged"


def test_a_new_release_is_rebuilt_from_the_cache_plus_only_what_changed(host, variant_builds, tmp_path):
    import hashlib

    from deployer.artifact import Artifact
    from deployer.host.unpack import is_cache_only

    v1, v2 = variant_builds("v1"), variant_builds("v2")
    engine = host.engine()
    engine.acquire()
    try:
        engine.stage(str(v1.path))
        missing = engine.preflight(v2.manifest, upload=True)["missing"]
        changed = {n for n, meta in v2.manifest["files"].items() if v1.manifest["files"].get(n) != meta}
        # the engine, the templates and unchanged wheels are not sent again
        assert set(missing) == changed and "engine.pyz" not in missing
        assert not any(n.startswith("packaging/") for n in missing)
        rid = engine.stage(str(Artifact(v2.path).thin(missing, tmp_path / "thin.tar")))
        rel = host.base / "releases" / rid
        # gone from releases/ but whole in the cache (a staging cut short, say):
        # the upload carries nothing but the manifest
        shutil.rmtree(rel)
        assert engine.preflight(v2.manifest, upload=True)["missing"] == []
        assert engine.stage(str(Artifact(v2.path).thin([], tmp_path / "bare.tar"))) == rid
    finally:
        engine.release_lock()
    for name, meta in v2.manifest["files"].items():
        if not is_cache_only(name):  # the release's own files are whole, from the cache
            assert hashlib.sha256((rel / name).read_bytes()).hexdigest() == meta["sha256"], name
    assert get_state(rel) == "staged"


def test_members_with_the_same_bytes_and_name_share_one_cache_entry(example_build, tmp_path):
    import hashlib

    from deployer.host.layout import Layout
    from deployer.host.unpack import unpack
    from tests.host.artifacts import rebuild

    def twin(tree) -> None:
        (tree / "packaging" / "copy").mkdir()
        shutil.copyfile(
            tree / "packaging" / "unit.service.in", tree / "packaging" / "copy" / "unit.service.in"
        )

    art = rebuild(example_build.path, tmp_path / "twin.tar", twin)
    layout = Layout(tmp_path / "app")
    partial = layout.partial(art.manifest["release_id"])
    unpack(str(art.path), partial, layout)
    a, b = partial / "packaging" / "unit.service.in", partial / "packaging" / "copy" / "unit.service.in"
    assert a.read_bytes() == b.read_bytes()
    sha = art.manifest["files"]["packaging/unit.service.in"]["sha256"]
    assert hashlib.sha256(a.read_bytes()).hexdigest() == sha
    assert os.path.samefile(a, b)


def test_a_planted_cache_entry_is_never_used_and_the_upload_replaces_it(host, variant_builds, tmp_path):
    """The deploy user (or anything that can write the cache) plants an entry with the
    right name and size but other bytes: it counts as missing, the upload replaces it,
    and the release is built from the real bytes."""
    import hashlib

    from deployer.artifact import Artifact
    from deployer.host.layout import Layout

    v1, v2 = variant_builds("v1"), variant_builds("v2")
    layout = Layout(host.base)
    engine = host.engine()
    engine.acquire()
    try:
        engine.stage(str(v1.path))
        lock = v2.manifest["files"]["requirements.lock"]
        app = v2.manifest["app_wheel"]
        planted = {"requirements.lock": lock, app: v2.manifest["files"][app]}
        for name, meta in planted.items():
            path = layout.cached(name, meta)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x" * meta["size"])  # right place, right size, wrong bytes
        missing = engine.preflight(v2.manifest, upload=True)["missing"]
        assert set(planted) <= set(missing)
        rid = engine.stage(str(Artifact(v2.path).thin(missing, tmp_path / "thin.tar")))
    finally:
        engine.release_lock()
    for name, meta in planted.items():
        assert hashlib.sha256(layout.cached(name, meta).read_bytes()).hexdigest() == meta["sha256"]
    rel = host.base / "releases" / rid
    assert hashlib.sha256((rel / "requirements.lock").read_bytes()).hexdigest() == lock["sha256"]
    assert get_state(rel) == "staged"


def test_a_planted_cache_entry_the_upload_lacks_is_refused(host, example_build):
    """Planted after the preflight, so the upload does not carry it: refused, not used."""
    from deployer.artifact import Artifact
    from deployer.errors import ArtifactError
    from deployer.host.layout import Layout
    from deployer.host.unpack import unpack

    layout = Layout(host.base)
    art = example_build
    lock = art.manifest["files"]["requirements.lock"]
    thin = host.base.parent / "thin.tar"
    Artifact(art.path).thin([n for n in art.manifest["files"] if n != "requirements.lock"], thin)
    path = layout.cached("requirements.lock", lock)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"y" * lock["size"])
    partial = layout.partial(art.manifest["release_id"])
    with pytest.raises(ArtifactError, match="requirements.lock"):
        unpack(str(thin), partial, layout)
    assert not partial.exists()
