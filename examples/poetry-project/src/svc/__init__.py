"""svc: the kiln example service (Poetry project)."""

__version__ = "0.1.0"
