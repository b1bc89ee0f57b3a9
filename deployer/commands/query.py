"""Questions to the hosts: ``releases``, ``status``, ``logs``, ``lock status``."""

from __future__ import annotations

import sys

import click

from deployer.commands.common import host_option, local_engine
from deployer.context import Context, pass_ctx


@click.command()
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


@click.command()
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
            f"{label}: {st.get('unit_name', 'unit')} {unit.get('ActiveState')} ({unit.get('SubState')}), "
            f"release {st.get('current')} {st.get('version') or ''}, health: {st.get('health')}"
            + (f", standing by: {st['standby']}" if st.get("standby") else "")
        )
    obj.out(data, "\n".join(lines))
    if not ok:
        sys.exit(1)


@click.command()
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


@click.group()
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


def _each(obj: Context, hosts, *args: str) -> dict:
    """Run an engine subcommand on every host; a failed host makes the exit code non-zero."""
    with local_engine() as engine:
        data, code = obj.pipeline().command(obj.hosts(hosts), engine, *args)
    obj.exit_code = max(obj.exit_code, code)
    return data


def register(group: click.Group) -> None:
    for command in (releases, status, logs, lock):
        group.add_command(command)
