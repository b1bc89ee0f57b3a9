"""``deployer host setup``: run the engine's ``setup`` as root, over SSH or locally."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployer.builder.engine import build_engine
from deployer.builder.release import packaging_templates
from deployer.config import Config
from deployer.errors import DeployerError, RemoteError
from deployer.host.contract import HostConfig, Status, engine_argv, parse_events
from deployer.output import Reporter
from deployer.pipeline import Pipeline
from deployer.remote.ssh import Endpoint


def bundle(config: Config, config_path: Path, dest: Path) -> Path:
    """engine.pyz + the templates, in ``dest``: everything setup needs on the host."""
    build_engine(dest / "engine.pyz")
    (dest / "packaging").mkdir()
    for name, path in packaging_templates(config, config_path).items():
        (dest / "packaging" / name).write_bytes(path.read_bytes())
    return dest


@dataclass(frozen=True)
class Trust:
    """What ``host setup`` does with the keys trusted to sign artifacts: ``keys`` (public key
    files) become exactly the trusted ones; ``allow_unsigned`` removes them all; neither
    leaves them as they are."""

    keys: tuple[str, ...] = ()
    allow_unsigned: bool = False

    def files(self) -> dict[str, Path]:
        """The key files by the name they take in the setup bundle."""
        return {f"trust-key-{i}.pub": Path(k) for i, k in enumerate(self.keys)}


def setup_argv(
    python: str, root: str, config: HostConfig, authorized_key: str | None, trust: Trust = Trust()
) -> list[str]:
    """The engine's ``setup`` from a bundle at ``root`` on the host."""
    args = ["setup", "--templates", f"{root}/packaging"]
    if authorized_key:
        args += ["--authorized-key", f"{root}/authorized_key.pub"]
    for name in trust.files():
        args += ["--trust-key", f"{root}/{name}"]
    if trust.allow_unsigned:
        args.append("--allow-unsigned")
    return engine_argv(python, f"{root}/engine.pyz", config, *args)


def setup_local(config: Config, config_path: Path, authorized_key: str | None, trust: Trust = Trust()) -> int:
    from deployer.host.cli import main as engine_main

    with tempfile.TemporaryDirectory(prefix="deployer-setup-") as tmp:
        root = bundle(config, config_path, Path(tmp))
        if authorized_key:
            (root / "authorized_key.pub").write_text(Path(authorized_key).read_text())
        for name, key in trust.files().items():
            (root / name).write_bytes(key.read_bytes())
        argv = setup_argv("python3", str(root), config.host_config(), authorized_key, trust)
        try:
            engine_main(argv[2:])
        except SystemExit as e:
            return int(e.code or 0)
    return 0


def setup_hosts(
    config: Config,
    config_path: Path,
    pipeline: Pipeline,
    reporter: Reporter,
    targets: list[Endpoint],
    admin_user: str,
    authorized_key: str | None,
    trust: Trust = Trust(),
) -> bool:
    ok = True
    with tempfile.TemporaryDirectory(prefix="deployer-setup-") as tmp:
        root = bundle(config, config_path, Path(tmp))
        for t in targets:
            admin = Endpoint(t.label, t.address, t.port, admin_user)
            try:
                _setup_one(config, pipeline, reporter, admin, root, authorized_key, trust)
            except DeployerError as e:
                reporter.event(t.label, {"step": "setup", "status": Status.FAIL, "detail": str(e)})
                ok = False
    return ok


def _setup_one(
    config: Config,
    pipeline: Pipeline,
    reporter: Reporter,
    admin: Endpoint,
    root: Path,
    authorized_key: str | None,
    trust: Trust,
) -> None:
    conn = pipeline.connect(admin)
    try:
        made = conn.run(["mktemp", "-d", "-t", "deployer-setup.XXXXXX"], step="setup").check()
        remote = made.stdout.strip()
        if not remote:
            raise RemoteError("cannot make a temporary directory", host=admin.label, step="setup")
        conn.sftp.mkdir(f"{remote}/packaging")
        for f in sorted(root.rglob("*")):
            if f.is_file():
                conn.upload(f, f"{remote}/{f.relative_to(root).as_posix()}")
        if authorized_key:
            conn.upload(Path(authorized_key), f"{remote}/authorized_key.pub")
        for name, key in trust.files().items():
            conn.upload(key, f"{remote}/{name}")
        argv = setup_argv(config.target.interpreter, remote, config.host_config(), authorized_key, trust)
        if admin.user != "root":
            argv = ["sudo", "-n", *argv]
        result = conn.run(argv, timeout=300, step="setup")
        conn.run(["rm", "-rf", remote])
        for event in parse_events(result.stdout):
            reporter.event(admin.label, event)
        if not result.ok:
            failed = [e for e in parse_events(result.stdout) if e.get("status") == Status.FAIL]
            if failed:
                raise RemoteError(f"setup failed: {failed[-1].get('detail')}", host=admin.label)
            result.check(reporter.redactor)
    finally:
        conn.close()
