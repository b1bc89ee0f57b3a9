"""``deployer`` command line: commands call into the pipeline; errors become one line.

Exit codes: 0 ok, 1 the operation failed, 2 bad input (usage, config, host key).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from deployer import __version__
from deployer.audit import Recorder, log_dir_option
from deployer.config import DEFAULT_CONFIG, Config, load_config
from deployer.errors import DeployerError, UsageError
from deployer.output import Reporter
from deployer.redact import SECRET_VARIABLES, Redactor

if TYPE_CHECKING:
    from deployer.pipeline import Pipeline
    from deployer.remote.ssh import Endpoint


class Context:
    active: Context | None = None  # for masking the final error line

    def __init__(self, config_path: str, mode: str):
        Context.active = self
        self.config_path = Path(config_path)
        self.redactor = Redactor()
        self.redactor.add_from_environ(SECRET_VARIABLES)
        self.reporter = Reporter(mode, self.redactor)
        self._config: Config | None = None
        self.exit_code = 0  # raised by a host that failed in a multi-host query

    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    def pipeline(self, accept_new: bool = False) -> Pipeline:
        from deployer.pipeline import Pipeline

        return Pipeline(self.config(), self.config_path, self.reporter, accept_new=accept_new)

    def hosts(self, only) -> list[Endpoint]:
        from deployer.pipeline import endpoints

        return endpoints(self.config(), list(only) or None)

    def recorder(self, action: str, log_dir: str) -> Recorder:
        return Recorder(self.config(), self.reporter, action, log_dir)

    def out(self, data, text: str) -> None:
        if self.reporter.mode == "json":
            click.echo(json.dumps(data, default=str))
        else:
            click.echo(self.redactor(text))


pass_ctx = click.make_pass_decorator(Context)
host_option = click.option(
    "--host", "hosts", multiple=True, metavar="NAME", help="Only this host (name or address); repeatable."
)
lock_wait_option = click.option(
    "--lock-wait",
    type=click.FloatRange(0, 3600),
    default=0,
    metavar="SECONDS",
    help="Wait for another deploy's lock.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deployer")
@click.option(
    "-c",
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="DEPLOYER_CONFIG",
    help="Path of deploy.toml.",
)
@click.option("--json", "mode", flag_value="json", help="JSON lines for machines.")
@click.option("--plain", "mode", flag_value="plain", help="Plain lines (default when not a TTY).")
@click.pass_context
def cli(ctx: click.Context, config_path: str, mode: str | None) -> None:
    """Continuous delivery for Python services on systemd hosts."""
    ctx.obj = Context(config_path, mode or "auto")


# ---------------------------------------------------------------------- build side
@cli.command()
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="dist",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the artifact is written.",
)
@pass_ctx
def build(obj: Context, out_dir: str) -> None:
    """Build ONE offline artifact (wheelhouse or pex) for the configured target."""
    result = _build(obj, Path(out_dir))
    click.echo(str(result.path))


def _build(obj: Context, out_dir: Path, config=None, config_path=None):
    from deployer.builder import build_release

    result = build_release(
        config or obj.config(),
        config_path or obj.config_path,
        out_dir,
        on_step=lambda name, detail: obj.reporter.event(
            "build", {"step": name, "status": "ok", "detail": detail}
        ),
    )
    m = result.manifest
    obj.reporter.say(f"built {m['app']} {m['version']} release {m['release_id']} in {result.seconds:.1f}s")
    return result


@cli.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@pass_ctx
def verify(obj: Context, artifact: str) -> None:
    """Check an artifact's manifest, every file's hash and its lock."""
    from deployer.host.artifact import verify_artifact

    m = verify_artifact(artifact)
    glibc = m.get("glibc_required") or "none"
    obj.out(
        m,
        f"ok: {m['app']} {m['version']} release {m['release_id']} ({m['format']}), "
        f"{len(m['files'])} files, Python {m['target']['python_version']} "
        f"{m['target']['platform']}, needs glibc {glibc}",
    )


# ---------------------------------------------------------------------- deploy side
@cli.command()
@click.argument("artifact", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--ref", help="Build this tag or commit in a clean worktree, then deploy it.")
@host_option
@click.option("--dry-run", is_flag=True, help="Preflight, stage and smoke-test only: no switch.")
@click.option("--env-file", type=click.Path(dir_okay=False), help="The .env to install.")
@click.option("--accept-new", is_flag=True, help="Trust unknown host keys (first contact only).")
@click.option(
    "--watch",
    type=click.FloatRange(0, 3600),
    metavar="SECONDS",
    help="Override health.watch: how long the new release is watched after healthy.",
)
@lock_wait_option
@log_dir_option
@pass_ctx
def deploy(
    obj: Context, artifact, ref, hosts, dry_run, env_file, accept_new, watch, lock_wait, log_dir
) -> None:
    """Ship an artifact (default: build HEAD) to the hosts, switch, health-gate."""
    from deployer.pipeline import env_text

    if artifact and ref:
        raise UsageError("give ARTIFACT or --ref, not both")
    config = obj.config()
    if watch is not None:
        config = obj._config = config.model_copy(
            update={"health": config.health.model_copy(update={"watch": watch})}
        )
    env = env_text(config, obj.config_path, env_file)
    targets = obj.hosts(hosts)
    with (
        obj.recorder("dry-run" if dry_run else "deploy", log_dir) as rec,
        tempfile.TemporaryDirectory(prefix="deployer-ref-") as tmp,
    ):
        if ref:
            artifact = _build_ref(obj, ref, Path(tmp)).path
        elif artifact is None:
            artifact = _build(obj, Path("dist")).path
        pipeline = obj.pipeline(accept_new)
        summary = pipeline.deploy(Path(artifact), env, targets, dry_run, lock_wait)
        rec.finish(summary, Path(artifact))
    _finish(obj, summary)


def _build_ref(obj: Context, ref: str, tmp: Path):
    """Build ``ref`` from a clean worktree of the config's repository."""
    import subprocess

    repo = obj.config_path.resolve().parent
    tree = tmp / "worktree"
    proc = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), ref],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "not found"
        raise UsageError(f"--ref {ref}: {why}")
    try:
        config_path = tree / obj.config_path.resolve().relative_to(repo)
        config = load_config(config_path)
        return _build(obj, repo / "dist", config, config_path)
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True
        )


@cli.command()
@click.option("--to", "to", metavar="ID", help="This release (default: the previous good one).")
@host_option
@lock_wait_option
@log_dir_option
@pass_ctx
def rollback(obj: Context, to, hosts, lock_wait, log_dir) -> None:
    """Point `current` at the previous good release, restart, health-gate."""
    with obj.recorder("rollback", log_dir) as rec, _local_engine() as engine:
        pipeline, targets = obj.pipeline(), obj.hosts(hosts)
        summary = pipeline.rollback(to, targets, lock_wait, engine)
        rec.finish(summary)
    _finish(obj, summary)


@cli.command()
@host_option
@pass_ctx
def releases(obj: Context, hosts) -> None:
    """Releases on each host: id, version, state, activated at, current."""
    data = _each(obj, hosts, "releases")
    lines = []
    for label, events in data.items():
        lines.append(f"{label}:")
        if isinstance(events, str):
            lines.append(f"  error: {events}")
            continue
        for e in events:
            if e.get("step") == "release":
                mark = "*" if e.get("current") else " "
                lines.append(
                    f" {mark} {e['id']}  {e.get('version') or '?':<40} "
                    f"{e.get('state') or '?':<8} {e.get('activated_at') or ''}"
                )
    obj.out(data, "\n".join(lines))


@cli.command()
@host_option
@pass_ctx
def status(obj: Context, hosts) -> None:
    """Unit state, current release and health on each host."""
    data = _each(obj, hosts, "status")
    lines = []
    ok = True
    for label, events in data.items():
        st = (
            next((e for e in events if e.get("step") == "status"), None)
            if not isinstance(events, str)
            else None
        )
        if st is None:
            ok = False
            lines.append(f"{label}: error: {events}")
            continue
        unit = st.get("unit", {})
        ok = ok and st.get("health") == "ok"
        lines.append(
            f"{label}: {unit.get('ActiveState')} ({unit.get('SubState')}), release "
            f"{st.get('current')} {st.get('version') or ''}, health: {st.get('health')}"
        )
    obj.out(data, "\n".join(lines))
    if not ok:
        sys.exit(1)


@cli.command()
@click.option("--release", metavar="ID", help="The journal excerpts kept for this release.")
@click.option("-n", "--lines", default=100, show_default=True)
@host_option
@pass_ctx
def logs(obj: Context, release, lines, hosts) -> None:
    """The service's journal on each host (secrets masked)."""
    args = ["logs", "-n", str(lines)] + (["--release", release] if release else [])
    data = _each(obj, hosts, *args)
    text = []
    for label, events in data.items():
        text += [f"==> {label}"] + (
            [events] if isinstance(events, str) else [e["detail"] for e in events if e.get("step") == "log"]
        )
    obj.out(data, "\n".join(text))


@cli.group()
def lock() -> None:
    """The deploy lock on each host."""


@lock.command("status")
@host_option
@pass_ctx
def lock_status(obj: Context, hosts) -> None:
    """Who holds the deploy lock."""
    data = _each(obj, hosts, "lock")
    obj.out(
        data,
        "\n".join(
            f"{label}: {events if isinstance(events, str) else events[-1].get('detail')}"
            for label, events in data.items()
        ),
    )


@cli.command()
@click.argument("artifact", required=False, type=click.Path(dir_okay=False, exists=True))
@host_option
@pass_ctx
def check(obj: Context, artifact, hosts) -> None:
    """Prove each host can take a deploy; writes nothing.

    Connection and pinned host key, the sudo rights, unit drift, and with an ARTIFACT
    its Python, glibc, wheel tags and the disk it needs.
    """
    from deployer.check import run_check

    ok = run_check(
        obj.config(),
        obj.config_path,
        obj.pipeline(),
        obj.reporter,
        obj.hosts(hosts),
        Path(artifact) if artifact else None,
    )
    if not ok:
        sys.exit(1)


@cli.group()
def host() -> None:
    """Prepare hosts."""


@host.command("setup")
@host_option
@click.option("--admin-user", default="root", show_default=True, help="An admin who may sudo (over SSH).")
@click.option(
    "--authorized-key",
    type=click.Path(dir_okay=False, exists=True),
    help="Public key to authorize for the deploy user.",
)
@click.option("--local", is_flag=True, help="Set up THIS machine (run as root).")
@click.option("--accept-new", is_flag=True, help="Trust unknown host keys (first contact only).")
@pass_ctx
def host_setup(obj: Context, hosts, admin_user, authorized_key, local, accept_new) -> None:
    """Once per host, as an admin: deploy user, layout, sudoers, unit (idempotent)."""
    from deployer.provision import setup_hosts, setup_local

    if local:
        sys.exit(setup_local(obj.config(), obj.config_path, authorized_key))
    ok = setup_hosts(
        obj.config(),
        obj.config_path,
        obj.pipeline(accept_new),
        obj.reporter,
        obj.hosts(hosts),
        admin_user,
        authorized_key,
    )
    if not ok:
        sys.exit(1)


@cli.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@click.option("--env-file", type=click.Path(dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True)
@click.option("--base", help="Base path (default: from the artifact).")
@lock_wait_option
def install(artifact, env_file, dry_run, base, lock_wait) -> None:
    """Install an artifact on THIS host (air-gapped): the same engine a deploy runs."""
    from deployer.host.cli import main as engine_main

    args = ["--lock-wait", str(lock_wait)] + (["--base", base] if base else [])
    args += ["install", artifact] + (["--env-file", env_file] if env_file else [])
    engine_main(args + (["--dry-run"] if dry_run else []))


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, exists=True))
@click.option("--owner", help="GitHub owner of the deployer repository (default: its origin's).")
@click.option(
    "--ref",
    "ref",
    default="main",
    show_default=True,
    help="Tag or commit of deployer the workflows use (pin one).",
)
@click.option(
    "--source", default=".", show_default=True, help="The service project (pyproject.toml) inside DIRECTORY."
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def init(directory, owner, ref, source, force) -> None:
    """Give a service repo its deploy.toml, packaging/ templates and GitHub workflows."""
    from deployer.scaffold import detect_owner, init_repo

    owner = owner or detect_owner(Path(__file__).resolve().parent.parent)
    if not owner:
        raise UsageError("--owner: give the GitHub owner of the deployer repository")
    root = Path(directory)
    for path in init_repo(root, owner, ref, force, source):
        click.echo(f"wrote {path.relative_to(root)}")


# ---------------------------------------------------------------------- helpers
def _each(obj: Context, hosts, *args: str) -> dict:
    """Run an engine subcommand on every host; a failed host makes the exit code non-zero."""
    with _local_engine() as engine:
        data, code = obj.pipeline().command(obj.hosts(hosts), engine, *args)
    obj.exit_code = max(obj.exit_code, code)
    return data


class _local_engine:
    """The engine zipapp built from this very package (for commands without an artifact)."""

    def __enter__(self) -> Path:
        from deployer.builder.release import build_engine

        self._tmp = tempfile.TemporaryDirectory(prefix="deployer-engine-")
        return build_engine(Path(self._tmp.name) / "engine.pyz")

    def __exit__(self, *exc) -> None:
        self._tmp.cleanup()


def _finish(obj: Context, summary) -> None:
    rows = []
    for h in summary.hosts:
        times = ""
        if h.healthy_s is not None:
            times = f" healthy {h.healthy_s:.2f}s, gate closed {h.gate_s:.2f}s"
        rows.append(
            f"  {h.label}: {h.result} {h.release or ''} {h.version or ''}{times}"
            + (f"\n    {h.detail}" if h.detail else "")
        )
    head = f"{summary.action} {'ok' if summary.ok else 'FAILED'} in {summary.seconds:.1f}s"
    obj.out(
        {
            "action": summary.action,
            "ok": summary.ok,
            "release": summary.release,
            "version": summary.version,
            "seconds": round(summary.seconds, 2),
            "hosts": [h.__dict__ for h in summary.hosts],
        },
        "\n".join([head, *rows]),
    )
    if not summary.ok:
        sys.exit(summary.exit_code)


def main() -> None:
    try:
        rc = cli.main(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
        if Context.active is not None and Context.active.exit_code:
            sys.exit(Context.active.exit_code)
    except click.exceptions.Abort:
        click.echo("deployer: aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except DeployerError as e:
        click.echo(f"deployer: error: {_mask(e)}", err=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        click.echo("deployer: interrupted", err=True)
        sys.exit(130)


def _mask(e: Exception) -> str:
    return Context.active.redactor(str(e)) if Context.active else str(e)
