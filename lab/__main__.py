"""``python -m lab up [MAP] | down | shell NAME [-- CMD...]`` (``./run hosts ...``): the real
hosts of a cloud map for a developer.

  up [MAP]          start the hosts of cloud.maps.d/MAP.map (default: default), Salt running
  down              stop and remove every lab host, mount, cgroup and the namespace
  shell NAME        a root shell on the running host NAME (or a command: shell NAME -- CMD...)
"""

import argparse
import os
import sys

from lab import cluster, hosts, system


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run hosts", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    up = sub.add_parser("up")
    up.add_argument("map", nargs="?", default=cluster.DEFAULT_MAP)
    sub.add_parser("down")
    shell = sub.add_parser("shell")
    shell.add_argument("name")
    shell.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args(argv)

    missing = system.missing_prerequisites()
    if missing:
        print(f"the lab cannot run here: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    if options.verb == "down":
        system.remove_all()
        return 0
    if options.verb == "up":
        lab = cluster.Cluster(options.map)
        timings = lab.up(progress=lambda line: print(f"==> {line}", file=sys.stderr))
        print(" ".join(f"{what} {seconds:.1f} s" for what, seconds in timings.items()))
        print(f"salt-master on {lab.salt_master}: ./run hosts shell {lab.salt_master} "
              "-- salt '*' test.ping")
        return 0
    command = options.command[1:] if options.command[:1] == ["--"] else options.command
    command = command or ["bash", "-l"]
    os.execvp("nsenter", hosts.Host(options.name, address=None, subnet=None).command(command))


if __name__ == "__main__":
    sys.exit(main())
