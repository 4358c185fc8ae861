"""`uv-worker-health`: imports the stack and reports; exit 0 when healthy. No network."""

import sys


def main() -> int:
    try:
        import arq
        import httpx
        import psycopg2
        import structlog

        from uv_worker.worker import WorkerSettings
    except Exception as exc:  # an import failure means the image is broken
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    from uv_worker import __version__

    print(
        f"healthy: uv-worker {__version__}, python {sys.version.split()[0]}, "
        f"arq {arq.VERSION}, httpx {httpx.__version__}, structlog {structlog.__version__}, "
        f"psycopg2 {psycopg2.__version__.split()[0]} (libpq {psycopg2.__libpq_version__}), "
        f"{len(WorkerSettings.functions)} task(s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
