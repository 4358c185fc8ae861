"""A worker with no SIGTERM handler, as many are: under an init it stops at once."""

import time

print("worker up", flush=True)
while True:
    time.sleep(1)
