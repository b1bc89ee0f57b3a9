"""The CI side: build ONE offline artifact for the configured target.

``build_release`` is the entry point; the modules below it are pure builders
(``target``, ``lock``, ``manifest``, ``archive``) and thin side-effect edges
(``source`` runs git and the wheel backend, ``wheelhouse`` runs uv and pip, ``pex``).
"""

from __future__ import annotations

__all__ = ["BuildResult", "build_release"]


def __getattr__(name: str):
    """``build_release`` and ``BuildResult``, imported on first use: a command that only
    needs the engine zipapp (``builder.engine``) does not load the whole build."""
    if name in __all__:
        from deployer.builder import release

        return getattr(release, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
