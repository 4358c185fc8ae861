"""`svc-health`: imports the core dependencies and reports; exit 0 when healthy. No network."""
import sys


def main() -> int:
    try:
        import httpx
        import pydantic
    except Exception as exc:  # an import failure means the image is broken
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    from svc import __version__

    extras = []
    for name in ("numpy", "tabulate"):
        try:
            module = __import__(name)
        except ImportError:
            continue
        extras.append(f"{name} {getattr(module, '__version__', '?')}")
    print(
        f"healthy: svc {__version__}, python {sys.version.split()[0]}, "
        f"httpx {httpx.__version__}, pydantic {pydantic.VERSION}"
        + (f", {', '.join(extras)}" if extras else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
