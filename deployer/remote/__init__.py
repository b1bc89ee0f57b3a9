"""The controller's side of the wire: SSH connections and the remote engine session."""

import sys

# paramiko imports `invoke` only to run the `Match exec` lines of ssh_config files, which
# deployer never reads; that import alone is 50-80 ms of every deploy's start. Hide it
# while paramiko loads (paramiko then keeps invoke = None), and only if nobody has it.
if "paramiko" not in sys.modules and "invoke" not in sys.modules:
    sys.modules["invoke"] = None  # type: ignore[assignment]
    try:
        import paramiko  # noqa: F401
    finally:
        del sys.modules["invoke"]
