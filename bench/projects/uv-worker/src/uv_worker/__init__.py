"""uv-worker: the kiln bench's uv project (an arq worker that writes to PostgreSQL)."""

__version__ = "0.1.0"
