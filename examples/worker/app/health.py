"""Health probe: `python -m app.health`. Imports the core stack; no network."""
import importlib
import sys

CORE = ("arq", "fastapi", "uvicorn", "psycopg2", "PIL", "mcp")


def main() -> int:
    for name in CORE:
        try:
            importlib.import_module(name)
        except Exception as exc:  # any import failure means the image is broken
            print(f"unhealthy: cannot import {name}: {exc}", file=sys.stderr)
            return 1
    import psycopg2

    print(f"healthy: python {sys.version.split()[0]}, psycopg2 {psycopg2.__version__.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
