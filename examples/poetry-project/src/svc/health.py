"""`svc-health`: imports the main dependencies and reports; exit 0 when healthy. No network."""
import sys


def main() -> int:
    try:
        import httpx
        import pydantic
    except Exception as exc:  # an import failure means the image is broken
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    from svc import __version__

    line = (
        f"healthy: svc {__version__} (poetry), python {sys.version.split()[0]}, "
        f"httpx {httpx.__version__}, pydantic {pydantic.VERSION}"
    )
    try:
        import tabulate  # the `worker` group
    except ImportError:
        pass
    else:
        line += f", tabulate {tabulate.__version__}"
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
