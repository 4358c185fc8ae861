"""svc: the kiln example service (uv project)."""

__version__ = "0.1.0"
