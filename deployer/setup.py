"""``deployer host setup``: run the engine's ``setup`` as root, over SSH or locally."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from deployer.builder.manifest import host_config
from deployer.builder.release import build_engine, packaging_templates
from deployer.errors import DeployerError, RemoteError
from deployer.remote.ssh import Target


def bundle(obj, dest: Path) -> Path:
    """engine.pyz + the templates, in ``dest``: everything setup needs on the host."""
    build_engine(dest / "engine.pyz")
    (dest / "packaging").mkdir()
    for name, path in packaging_templates(obj.config(), obj.config_path).items():
        (dest / "packaging" / name).write_bytes(path.read_bytes())
    return dest


def setup_argv(python: str, root: str, config: dict, authorized_key: str | None) -> list[str]:
    argv = [
        python,
        f"{root}/engine.pyz",
        "--config-json",
        json.dumps(config, separators=(",", ":")),
        "setup",
        "--templates",
        f"{root}/packaging",
    ]
    return argv + (["--authorized-key", f"{root}/authorized_key.pub"] if authorized_key else [])


def setup_local(obj, authorized_key: str | None) -> int:
    from deployer.host.cli import main as engine_main

    with tempfile.TemporaryDirectory(prefix="deployer-setup-") as tmp:
        root = bundle(obj, Path(tmp))
        if authorized_key:
            (root / "authorized_key.pub").write_text(Path(authorized_key).read_text())
        argv = setup_argv("python3", str(root), host_config(obj.config()), authorized_key)
        try:
            engine_main(argv[2:])
        except SystemExit as e:
            return int(e.code or 0)
    return 0


def setup_hosts(
    obj, targets: list[Target], admin_user: str, authorized_key: str | None, accept_new: bool
) -> bool:
    pipeline = obj.pipeline(accept_new)
    config = host_config(obj.config())
    ok = True
    with tempfile.TemporaryDirectory(prefix="deployer-setup-") as tmp:
        root = bundle(obj, Path(tmp))
        for t in targets:
            admin = Target(t.label, t.address, t.port, admin_user)
            try:
                _setup_one(obj, pipeline, admin, root, config, authorized_key)
            except DeployerError as e:
                obj.reporter.event(t.label, {"step": "setup", "status": "fail", "detail": str(e)})
                ok = False
    return ok


def _setup_one(obj, pipeline, admin: Target, root: Path, config: dict, authorized_key: str | None) -> None:
    conn = pipeline.connect(admin)
    try:
        code, out, _ = conn.run(["mktemp", "-d", "-t", "deployer-setup.XXXXXX"])
        remote = out.strip()
        if code != 0 or not remote:
            raise RemoteError(f"{admin.label}: cannot make a temporary directory")
        conn.sftp.mkdir(f"{remote}/packaging")
        for f in sorted(root.rglob("*")):
            if f.is_file():
                conn.upload(f, f"{remote}/{f.relative_to(root).as_posix()}")
        if authorized_key:
            conn.upload(Path(authorized_key), f"{remote}/authorized_key.pub")
        argv = setup_argv(obj.config().target.interpreter, remote, config, authorized_key)
        if admin.user != "root":
            argv = ["sudo", "-n", *argv]
        code, out, err = conn.run(argv, timeout=300)
        conn.run(["rm", "-rf", remote])
        for line in out.splitlines():
            try:
                obj.reporter.event(admin.label, json.loads(line))
            except ValueError:
                continue
        if code != 0:
            raise RemoteError(
                f"{admin.label}: setup failed: {(err.strip().splitlines() or ['see above'])[-1]}"
            )
    finally:
        conn.close()
