"""deployer: continuous delivery for Python services on systemd hosts."""

__version__ = "0.1.0"
