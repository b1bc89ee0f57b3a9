"""Retention: which releases, cached wheels, .env backups and logs a prune keeps."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from deployer.host import retention
from deployer.host.activate import EnvChange
from deployer.host.envfile import sha256_text
from deployer.host.layout import Layout
from deployer.host.retention import choose_releases_to_prune
from deployer.host.state import History, get_state, rollback_target

IDS = [f"202611{d:02d}T000000Z-{c * 7}" for d, c in zip(range(1, 7), "abcdef", strict=True)]
A, B, C, D, E, F = IDS


# ---------------------------------------------------------------- the pure choice
def test_keeps_the_newest_n():
    states = dict.fromkeys(IDS, "good")
    assert choose_releases_to_prune(IDS, states, 2, set()) == [A, B, C, D]
    assert choose_releases_to_prune(IDS, states, 3, {F}) == [A, B, C]
    assert choose_releases_to_prune(IDS, states, 10, {F}) == []


def test_never_deletes_current_the_rollback_target_or_what_is_being_staged():
    states = dict.fromkeys(IDS, "good")
    states[F] = "staging"
    # current is the OLDEST id (a hotfix re-deployed it), the rollback target in the middle
    for keep in (0, 1, 2, 3):
        doomed = choose_releases_to_prune(IDS, states, keep, {A, C, F})
        assert not {A, C, F} & set(doomed)
    assert choose_releases_to_prune(IDS, states, 1, {A, C, F}) == [B, D, E]
    assert choose_releases_to_prune(IDS, states, 4, {A, C, F}) == [B, D]


def test_bad_releases_never_take_a_kept_slot_from_good_ones():
    states = {A: "good", B: "good", C: "bad", D: "bad", E: None, F: "good"}
    # newest first would keep D and E; good ones win the two free slots
    assert choose_releases_to_prune(IDS, states, 3, {F}) == [C, D, E]
    # staged (a dry run) ranks below good, above bad
    states[C] = "staged"
    assert choose_releases_to_prune(IDS, states, 4, {F}) == [D, E]
    assert choose_releases_to_prune(IDS, states, 3, {F}) == [C, D, E]


# ---------------------------------------------------------------- prune() on a temp dir
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fabricate_release(
    layout: Layout, rid: str, state: str | None, wheels: dict[str, bytes], env_text: str | None
) -> None:
    """A release dir as the engine leaves it, with its wheels in the content-addressed cache."""
    rel = layout.release(rid)
    (rel / "venv" / "bin").mkdir(parents=True)
    files = {}
    for name, data in wheels.items():
        sha = _sha(data)
        files[f"wheels/{name}"] = {"size": len(data), "sha256": sha}
        cached = layout.cached(f"wheels/{name}", files[f"wheels/{name}"])
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(data)
        layout.wheelhouse.mkdir(parents=True, exist_ok=True)
        if not (layout.wheelhouse / name).exists():
            os.link(cached, layout.wheelhouse / name)
    files["requirements.lock"] = {"size": 1, "sha256": _sha(b"x")}
    (rel / "manifest.json").write_text(json.dumps({"release_id": rid, "version": rid[-7:], "files": files}))
    if state:
        (rel / ".state").write_text(state + "\n")
    if env_text is not None:
        (rel / "env.sha256").write_text(sha256_text(env_text) + "\n")


def wheel(name: str) -> dict[str, bytes]:
    return {f"{name}-1-py3-none-any.whl": name.encode()}


def test_prune_removes_releases_wheels_env_backups_logs_and_partials(tmp_path):
    layout = Layout(tmp_path / "app")
    envs = {rid: f"TOKEN={rid}\n" for rid in IDS}
    dep = {"dep-1.0-py3-none-any.whl": b"dep"}
    fabricate_release(layout, A, "good", {**dep, **wheel("a")}, envs[A])
    fabricate_release(layout, B, "good", {**dep, **wheel("b")}, envs[B])
    fabricate_release(layout, C, "bad", wheel("c"), envs[C])
    fabricate_release(layout, D, "good", {**dep, **wheel("d")}, envs[D])
    fabricate_release(layout, E, "staged", wheel("e"), None)  # a dry run
    history = History(layout)
    for rid, result in ((A, "success"), (B, "success"), (C, "reverted"), (D, "success")):
        history.append({"action": "deploy", "to": rid, "result": result})
    os.symlink(f"releases/{D}", layout.current)
    layout.shared.mkdir(parents=True, exist_ok=True)
    layout.env.parent.mkdir(parents=True, exist_ok=True)
    layout.env.write_text(envs[D])
    for i, text in enumerate(["OLD=1\n", envs[A], envs[B], envs[C]]):
        (layout.shared / f".env.bak.2026110{i}T000000Z").write_text(text)
    (layout.shared / "sessions").mkdir()
    (layout.shared / "sessions" / "bot.session").write_text("session")
    (layout.shared / "data").mkdir()
    partial = layout.partial(F)
    (partial / "venv").mkdir(parents=True)
    old = time.time() - 40 * 86400
    for rid in (A, C, E):
        (layout.release_log(rid)).mkdir(parents=True)
        (layout.release_log(rid) / "install.log").write_text("log")
        if rid != E:
            os.utime(layout.release_log(rid), (old, old))
    assert rollback_target(layout, history) == B

    removed = retention.prune(layout, keep=3)

    # current (D) and the rollback target (B) are protected; one slot left goes to the
    # newest good one (A), not to the bad C; the dry run's staged E goes whatever keep says
    assert layout.release_ids() == [A, B, D]
    assert removed["releases"] == [C, E]
    assert removed["partials"] == [partial.name] and not partial.exists()
    kept_wheels = {**dep, **wheel("a"), **wheel("b"), **wheel("d")}
    assert sorted(p.name for p in layout.members.iterdir()) == sorted(map(_sha, kept_wheels.values()))
    assert removed["members"] == sorted([_sha(b"c"), _sha(b"e")])
    assert sorted(p.name for p in layout.wheelhouse.iterdir()) == sorted(kept_wheels)
    for name, data in kept_wheels.items():
        assert layout.cached(f"wheels/{name}", {"sha256": _sha(data)}).read_bytes() == data
    backups = sorted(p.read_text() for p in layout.shared.glob(".env.bak.*"))
    assert backups == sorted([envs[A], envs[B]]), "backups of kept releases stay, others go"
    assert layout.env.read_text() == envs[D]
    assert (layout.shared / "sessions" / "bot.session").read_text() == "session"
    assert (layout.shared / "data").is_dir()
    assert removed["logs"] == [C], "old logs of pruned releases; young ones wait"
    assert (layout.release_log(A) / "install.log").exists() and layout.release_log(E).exists()
    assert os.readlink(layout.current) == f"releases/{D}"
    assert get_state(layout.release(B)) == "good"
    # a second prune has nothing left to do
    assert not any(retention.prune(layout, keep=3).values())


def test_prune_removes_extracted_tools_no_kept_release_ships(tmp_path):
    layout = Layout(tmp_path / "app")
    for rid, uv in ((A, b"uv 0.12"), (B, b"uv 0.13"), (C, b"uv 0.13")):
        fabricate_release(layout, rid, "good", wheel(rid[-1]), None)
        manifest = json.loads((layout.release(rid) / "manifest.json").read_text())
        manifest["uv_wheel"] = "tools/uv-1-py3-none-any.whl"
        manifest["files"]["tools/uv-1-py3-none-any.whl"] = {"size": len(uv), "sha256": _sha(uv)}
        (layout.release(rid) / "manifest.json").write_text(json.dumps(manifest))
        (layout.tool_dir(_sha(uv)) / "uv").parent.mkdir(parents=True, exist_ok=True)
        (layout.tool_dir(_sha(uv)) / "uv").write_bytes(uv)
    os.symlink(f"releases/{C}", layout.current)

    removed = retention.prune(layout, keep=2)

    assert removed["releases"] == [A]
    assert removed["tools"] == [layout.tool_dir(_sha(b"uv 0.12")).name]
    assert [p.name for p in layout.tools.iterdir()] == [layout.tool_dir(_sha(b"uv 0.13")).name]


# ---------------------------------------------------------------- the real thing
@pytest.mark.slow
def test_keep_one_still_keeps_current_and_the_rollback_target(host, variant_builds):
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    id1, id2 = v1.manifest["release_id"], v2.manifest["release_id"]
    host.config["keep_releases"] = 1
    engine = host.engine()
    engine.acquire()
    try:
        for build, secret in ((v1, "s3cr3t-one"), (v2, "s3cr3t-two"), (v1, "s3cr3t-one")):
            rid = engine.stage(str(build.path))
            engine.activate(rid, EnvChange(text=host.env_text(secret)))
        assert os.readlink(host.base / "current") == f"releases/{id1}"
        removed = engine.prune()
        assert removed["releases"] == [] and removed["members"] == []
        assert host.engine().layout.release_ids() == sorted([id1, id2])
        for build in (v1, v2):
            for name, meta in build.manifest["files"].items():
                if name.startswith(("wheels/", "tools/")):
                    assert (host.base / "cache" / "members" / meta["sha256"] / Path(name).name).is_file()
        # the rollback target is whole: venv, state, and the .env it ran with
        result = engine.rollback()
    finally:
        engine.release_lock()
    assert result["to"] == id2 and result["result"] == "success"
    assert "s3cr3t-two" in host.env_path.read_text()


@pytest.mark.slow
def test_prune_cleans_what_only_uvs_cache_still_holds_and_uv_unpacks_it_again(host, variant_builds):
    v1, v2 = variant_builds("v1"), variant_builds("v2")
    id1, id2 = v1.manifest["release_id"], v2.manifest["release_id"]
    uv_cache = host.base / "cache" / "uv"
    uv_cache.unlink()  # this host's own cache: no other test's venv links its files
    uv_cache.mkdir()
    v1_app = f"tg_video_streamer-{v1.manifest['version']}.dist-info"

    def unpacked(dist_info: str) -> list:
        return list(uv_cache.glob(f"archive-v*/*/{dist_info}"))

    engine = host.engine()
    engine.acquire()
    try:
        for build in (v1, v2):
            engine.activate(engine.stage(str(build.path)), EnvChange(text=host.env_text()))
        assert unpacked(v1_app), "uv unpacked v1's app wheel into its cache"
        assert retention.prune(engine.layout, keep=5)["uv_cache"] == [], "v1's venv still uses it"

        shutil.rmtree(engine.layout.release(id1))  # what a prune of v1 does
        assert retention.prune(engine.layout, keep=5)["uv_cache"] == ["tg-video-streamer"]
        assert not unpacked(v1_app)
        assert unpacked("aiohttp-*.dist-info"), "what the live venv uses stays"

        # uv is not left pointing at what was cleaned: v1 installs again
        engine.activate(engine.stage(str(v1.path)), EnvChange(text=host.env_text()))
    finally:
        engine.release_lock()
    assert os.readlink(host.base / "current") == f"releases/{id1}"
    assert get_state(host.base / "releases" / id2) == "good"
    assert unpacked(v1_app)
