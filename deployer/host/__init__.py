"""The host engine: runs ON the target host (and offline), standard library only.

Python >= 3.9. Every step prints one JSON event line. Shipped inside each artifact
as ``engine.pyz``, so host and controller always agree about versions.
"""
