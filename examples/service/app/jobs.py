"""The GPU variant's process: a job runner (here it only says so and waits)."""

import time

print("gpu job runner up", flush=True)
while True:
    time.sleep(1)
