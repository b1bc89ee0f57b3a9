"""The keys a host trusts, checked by the controller before the artifact's engine runs.

A deploy starts the engine the artifact carries: an artifact that is not what its
signature says would bring an engine that need not check anything. So the controller
first reads the host's allowed signers (root's file, readable by all) and checks the
signature itself, with the engine's own code; the engine checks again before it unpacks.
"""

from __future__ import annotations

from deployer.errors import SignatureError
from deployer.host.artifact import SignedManifest
from deployer.host.contract import allowed_signers_path
from deployer.host.signature import Signature, Trust, check
from deployer.remote.ssh import Connection


def check_trusted(conn: Connection, signed: SignedManifest, where: str, app: str) -> Signature | None:
    """The artifact's signature against the keys ``conn``'s host trusts for ``app``; None
    when it trusts none (an unsigned artifact may go there). ``SignatureError`` otherwise."""
    path = allowed_signers_path(app)
    text = conn.read_text(path)
    if text is None:
        return None
    try:
        return check(signed, Trust(path, app, text), where)
    except SignatureError as e:
        raise SignatureError(
            e.message, fingerprint=e.fingerprint, trust=e.trust, host=conn.target.label, step="signature"
        ) from None
