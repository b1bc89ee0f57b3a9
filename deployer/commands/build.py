"""The build side: ``build`` and ``verify``."""

from __future__ import annotations

from pathlib import Path

import click

from deployer.commands.common import trust_key_option
from deployer.context import Context, pass_ctx


@click.command()
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="dist",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the artifact is written.",
)
@click.option(
    "--sign",
    "sign_key",
    metavar="KEY",
    type=click.Path(dir_okay=False),
    help="Sign the manifest with this SSH key (ssh-keygen -Y sign; default artifact.signing_key, "
    "DEPLOYER_SIGNING_KEY_FILE).",
)
@pass_ctx
def build(obj: Context, out_dir: str, sign_key: str | None) -> None:
    """Build ONE offline artifact (wheelhouse or pex) for the configured target."""
    result = build_artifact(obj, Path(out_dir), sign_key=sign_key)
    click.echo(str(result.path))


def build_artifact(obj: Context, out_dir: Path, config=None, config_path=None, sign_key=None):
    """Build the release (of ``config``, default the context's) into ``out_dir``, reporting each step."""
    from deployer.builder import build_release

    result = build_release(
        config or obj.config(),
        config_path or obj.config_path,
        out_dir,
        on_step=lambda name, detail: obj.reporter.event(
            "build", {"step": name, "status": "ok", "detail": detail}
        ),
        sign_key=sign_key,
    )
    m = result.manifest
    obj.reporter.say(f"built {m['app']} {m['version']} release {m['release_id']} in {result.seconds:.1f}s")
    return result


@click.command()
@click.argument("artifact", type=click.Path(dir_okay=False, exists=True))
@trust_key_option("Also require its signature by one of these public keys, as a host trusting them does.")
@pass_ctx
def verify(obj: Context, artifact: str, trust_keys: tuple[str, ...]) -> None:
    """Check an artifact's manifest, every file's hash and its lock (and its signature)."""
    from deployer.host.artifact import read_signed, verify_artifact
    from deployer.host.signature import Trust, check, parse_signature

    m = verify_artifact(artifact)
    signed = read_signed(artifact)
    if trust_keys:
        keys = [Path(k).read_text(encoding="utf-8", errors="replace") for k in trust_keys]
        sig = check(signed, Trust.of_keys(m["app"], keys, "--trust-key"), artifact)
        signature = f"signed by {sig.fingerprint}, a trusted key"
    elif signed.signature is not None:
        fingerprint = parse_signature(signed.signature, artifact).fingerprint
        signature = f"signed by {fingerprint} (not checked against a key: --trust-key)"
    else:
        signature = "unsigned"
    glibc = m.get("glibc_required") or "none"
    obj.out(
        m,
        f"ok: {m['app']} {m['version']} release {m['release_id']} ({m['format']}), "
        f"{len(m['files'])} files, Python {m['target']['python_version']} "
        f"{m['target']['platform']}, needs glibc {glibc}, {signature}",
    )


def register(group: click.Group) -> None:
    group.add_command(build)
    group.add_command(verify)
