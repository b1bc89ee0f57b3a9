"""notes_api: a small web API that keeps notes in a sqlite file.

Run it with ``python -m notes_api``; settings come from the environment
(see :mod:`notes_api.settings`).
"""

from __future__ import annotations

__all__ = ["__version__"]

#: The version the service reports (in /health and --version), kept by hand.
__version__ = "1.0.0"
