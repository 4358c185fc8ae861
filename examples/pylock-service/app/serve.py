"""`python -m app.serve`: a tiny long-running process that prints a heartbeat until SIGTERM/SIGINT."""
import asyncio
import os
import signal
import sys

from pydantic import BaseModel


class Heartbeat(BaseModel):
    beat: int
    pid: int


async def run(interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    beat = 0
    print("pylock-service: serving", flush=True)
    while not stop.is_set():
        print(Heartbeat(beat=beat, pid=os.getpid()).model_dump_json(), flush=True)
        beat += 1
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            pass
    print("pylock-service: stopped", flush=True)


def main() -> int:
    asyncio.run(run(float(os.environ.get("SVC_INTERVAL", "5"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
