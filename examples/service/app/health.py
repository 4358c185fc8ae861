"""Healthy when the runtime user can write its state and read its config, and cannot
rewrite the code it runs."""

import os
import sys

STATE = ("/var/lib/svc", "/var/cache/svc")
CONFIG = "/etc/svc/svc.toml"


def main() -> int:
    for d in STATE:
        probe = os.path.join(d, ".health")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    with open(CONFIG) as f:
        f.read()
    if os.access(os.path.dirname(__file__), os.W_OK):
        print("the code is writable by the app", file=sys.stderr)
        return 1
    print("healthy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
