"""tg_video_streamer: a Telegram video-streaming bot with an HTTP health endpoint.

Run it with ``python -m tg_video_streamer``; settings come from the environment
(see :mod:`tg_video_streamer.settings`).
"""

from __future__ import annotations

__all__ = ["__version__", "installed_version"]

#: Version of the source tree; the installed distribution's metadata wins.
__version__ = "0.1.0"


def installed_version() -> str:
    """Return the installed distribution's version, or ``__version__`` if not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tg_video_streamer")
    except PackageNotFoundError:
        return __version__
