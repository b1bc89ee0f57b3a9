"""The CI side: build ONE offline artifact for the configured target.

``build_release`` is the entry point; the modules below it are pure builders
(``target``, ``lock``, ``manifest``, ``archive``) and thin side-effect edges
(``source`` runs git and the wheel backend, ``wheelhouse`` runs uv and pip, ``pex``).
"""

from deployer.builder.release import BuildResult, build_release

__all__ = ["BuildResult", "build_release"]
