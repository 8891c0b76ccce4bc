"""Entry points of the stand-in images (``python3 /standin.pyz marathon|vulcand FLAGS``):
the project's Marathon simulator, and its vulcand simulator on the host's real etcd (its
listeners on their stored addresses, its servers anywhere in the VPC, as vulcand's), each
listening where the flags of the formulas' units say."""

import sys
import threading

from lab.standins import VPC_CIDR
from simulators.base import serve_forever_on


def _flags(argv):
    """``--name value`` and ``-name=value`` pairs."""
    flags, pending = {}, None
    for arg in argv:
        if pending:
            flags[pending], pending = arg, None
        elif "=" in arg:
            name, value = arg.lstrip("-").split("=", 1)
            flags[name] = value
        else:
            pending = arg.lstrip("-")
    return flags


def marathon(flags):
    """Its tasks run on the Mesos agents of ``--master`` (lab/standins/mesos.py)."""
    from lab.standins.mesos import MesosTasks, masters_of
    from simulators.marathon import MarathonSimulator

    simulator = MarathonSimulator(launcher=MesosTasks(masters_of(flags["master"]))).start()
    serve_forever_on(simulator, flags["http_address"], int(flags.get("http_port", 8080)))


def vulcand(flags):
    from simulators.vulcand import VulcandSimulator

    simulator = VulcandSimulator(etcd_url=flags["etcd"].split(",")[0], prefix=flags.get("etcdKey", "/vulcand"),
                                 upstream_networks=[VPC_CIDR]).start()
    serve_forever_on(simulator, flags["apiInterface"], int(flags.get("apiPort", 8182)))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    {"marathon": marathon, "vulcand": vulcand}[argv[0]](_flags(argv[1:]))
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
