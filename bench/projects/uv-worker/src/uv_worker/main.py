"""`uv-worker`: runs the arq worker until SIGTERM."""

import sys

from arq import run_worker


def main() -> int:
    from uv_worker.worker import WorkerSettings

    run_worker(WorkerSettings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
