"""The host engine's command line: ``python3 engine.pyz COMMAND``."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from deployer import __version__
from deployer.errors import DeployerError
from deployer.host.artifact import verify_artifact
from deployer.host.events import Events


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engine.pyz", description="deployer host engine")
    p.add_argument("--version", action="version", version=f"deployer-engine {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check an artifact's manifest and every hash")
    v.add_argument("artifact")
    return p


def main(argv: Optional[List[str]] = None) -> None:
    args = _parser().parse_args(argv)
    events = Events()
    try:
        if args.command == "verify":
            with events.step("verify", args.artifact) as r:
                m = verify_artifact(args.artifact)
                r["detail"] = f"{m['app']} {m['version']} release {m['release_id']}"
    except DeployerError as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
