"""Health probe: `python -m app.health`. Imports the locked dependencies; no network."""
import sys


def main() -> int:
    try:
        import httpx
        import pydantic
    except Exception as exc:  # an import failure means the image is broken
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print(
        f"healthy: pylock-service, python {sys.version.split()[0]}, "
        f"httpx {httpx.__version__}, pydantic {pydantic.VERSION}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
