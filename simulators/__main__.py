"""Run one simulator in the foreground: ``python -m simulators NAME [--port N] [options]``.

Once listening it prints one JSON line with its URLs (``{"name": ..., "url": ...}``) so that a
supervisor started with port 0 learns where it is; it stops on SIGINT or SIGTERM.
"""

import argparse
import json
import signal
import sys
import threading

from simulators import REGISTRY, simulator_class


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    chooser = argparse.ArgumentParser(prog="python -m simulators")
    chooser.add_argument("name", choices=sorted(REGISTRY))
    known, _ = chooser.parse_known_args(argv[:1])
    cls = simulator_class(known.name)

    parser = argparse.ArgumentParser(prog=f"python -m simulators {known.name}")
    parser.add_argument("--port", type=int, default=0, help="listening port (default: any free)")
    cls.add_arguments(parser)
    options = vars(parser.parse_args(argv[1:]))

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    with cls(**options) as simulator:
        print(json.dumps({"name": known.name, **simulator.urls}), flush=True)
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
