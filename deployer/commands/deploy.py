"""The deploy side: ``deploy`` and ``rollback``, and the summary line both end with."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from deployer.audit import log_dir_option
from deployer.commands.build import build_artifact
from deployer.commands.common import host_option, local_engine, lock_wait_option
from deployer.config import load_config
from deployer.context import Context, pass_ctx
from deployer.errors import UsageError


@click.command()
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
    from deployer.targets import env_text

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
            artifact = build_artifact(obj, Path("dist")).path
        pipeline = obj.pipeline(accept_new)
        summary = pipeline.deploy(Path(artifact), env, targets, dry_run, lock_wait)
        rec.finish(summary, Path(artifact))
    _finish(obj, summary)


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit ``ref`` names, resolved once; a ref is never read as an option."""
    import subprocess

    if not ref or ref.startswith("-"):
        raise UsageError(f"--ref {ref!r}: not a tag, branch or commit (it would be read as an option)")
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise UsageError(f"--ref {ref}: no such tag, branch or commit in {repo}")
    return proc.stdout.strip()


def _build_ref(obj: Context, ref: str, tmp: Path):
    """Build ``ref`` from a clean worktree of the config's repository."""
    import subprocess

    repo = obj.config_path.resolve().parent
    tree = tmp / "worktree"
    sha = resolve_ref(repo, ref)
    proc = subprocess.run(
        ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), sha],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "not found"
        raise UsageError(f"--ref {ref}: {why}")
    try:
        config_path = tree / obj.config_path.resolve().relative_to(repo)
        config = load_config(config_path)
        return build_artifact(obj, repo / "dist", config, config_path)
    finally:
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True
        )


@click.command()
@click.option("--to", "to", metavar="ID", help="This release (default: the previous good one).")
@host_option
@lock_wait_option
@log_dir_option
@pass_ctx
def rollback(obj: Context, to, hosts, lock_wait, log_dir) -> None:
    """Point `current` at the previous good release, restart, health-gate."""
    with obj.recorder("rollback", log_dir) as rec, local_engine() as engine:
        pipeline, targets = obj.pipeline(), obj.hosts(hosts)
        summary = pipeline.rollback(to, targets, lock_wait, engine)
        rec.finish(summary)
    _finish(obj, summary)


def _finish(obj: Context, summary) -> None:
    """One line for the run, one per host, and which host runs which release; exit with
    the summary's code when it failed."""
    canary = obj.config().rollout.canary > 0
    obj.out(summary_data(summary), summary_text(summary, canary))
    if not summary.ok:
        sys.exit(summary.exit_code)


def summary_data(summary) -> dict:
    """The run for ``--json`` (pure)."""
    return {
        "action": summary.action,
        "ok": summary.ok,
        "release": summary.release,
        "version": summary.version,
        "seconds": round(summary.seconds, 2),
        "waves": summary.waves,
        "runs": summary.runs,
        "hosts": [h.__dict__ for h in summary.hosts],
    }


def summary_text(summary, canary: bool) -> str:
    """The run for a person (pure): the head line, two or three lines per host (its
    result, the detail, the release it runs and its wave), then ``runs: ...``."""
    several = len(summary.waves) > 1
    rows = []
    for h in summary.hosts:
        times = ""
        if h.healthy_s is not None:
            times = f" healthy {h.healthy_s:.2f}s, gate closed {h.gate_s:.2f}s"
        wave = ""
        if several and h.wave is not None:
            wave = f" (wave {h.wave}{', the canary' if canary and h.wave == 1 else ''})"
        rows.append(
            f"  {h.label}: {h.result} {h.release or ''} {h.version or ''}{times}"
            + (f"\n    {h.detail}" if h.detail else "")
            + f"\n    runs {h.running or 'nothing known'}{wave}"
        )
    head = f"{summary.action} {'ok' if summary.ok else 'FAILED'} in {summary.seconds:.1f}s"
    return "\n".join([head, *rows, *([runs_line(summary)] if len(summary.hosts) > 1 else [])])


def runs_line(summary) -> str:
    """``runs: <release> on h1, h2; <other> on h3``: every host named once (pure)."""
    groups: dict[str, list[str]] = {}
    for h in summary.hosts:
        groups.setdefault(h.running or "nothing known", []).append(h.label)
    return "runs: " + "; ".join(f"{rel} on {', '.join(labels)}" for rel, labels in groups.items())


def register(group: click.Group) -> None:
    group.add_command(deploy)
    group.add_command(rollback)
