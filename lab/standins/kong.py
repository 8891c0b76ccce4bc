"""``kong``: a stand-in for Kong Gateway 3.9.3's CLI (``version``, ``prepare``, ``start``,
``quit``, ``reload``, ``migrations bootstrap|list|up|finish``), its payload the project's Kong
simulator (Admin API and proxy) on the addresses of kong.conf, its proxy reaching services in
the VPC by the names the host resolves, as Kong does.

The migrations are real database work: through ``psql`` with kong.conf's pg_* settings,
Kong's user creates and reads the schema marker table, so the database, the user and its
password are proven as Kong would prove them.
"""

import os
import pathlib
import signal
import subprocess
import sys
import threading

from lab.standins import VPC_CIDR, notify_ready
from simulators.base import serve_forever_on
from simulators.kong import KongSimulator

VERSION = "3.9.3"
NEEDS_BOOTSTRAP = 3  # `kong migrations list`'s exit status for a database without the schema


def read_conf(path):
    conf = {}
    for line in pathlib.Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            conf[key] = value
    return conf


def _psql(conf, sql):
    environment = {**os.environ, "PGPASSWORD": conf.get("pg_password", "")}
    return subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", conf.get("pg_host", "127.0.0.1"),
         "-p", conf.get("pg_port", "5432"), "-U", conf.get("pg_user", "kong"), "-d", conf.get("pg_database", "kong"),
         "-c", sql],
        env=environment, capture_output=True, text=True,
    )


def migrations(verb, conf):
    if verb == "bootstrap":
        done = _psql(conf, "CREATE TABLE IF NOT EXISTS schema_meta (key text PRIMARY KEY, executed text);"
                           f"INSERT INTO schema_meta VALUES ('core', '{VERSION}') ON CONFLICT DO NOTHING;")
    elif verb == "list":
        done = _psql(conf, "SELECT executed FROM schema_meta WHERE key = 'core';")
        if done.returncode == 0 and not done.stdout.strip():
            print("Database needs bootstrapping or is older than Kong 1.0.", file=sys.stderr)
            return NEEDS_BOOTSTRAP
        if done.returncode != 0 and "schema_meta" in done.stderr:
            print("Database needs bootstrapping or is older than Kong 1.0.", file=sys.stderr)
            return NEEDS_BOOTSTRAP
    else:  # up, finish: the stand-in's schema has one version
        done = _psql(conf, "SELECT 1 FROM schema_meta;")
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


def _listen(value):
    """'10.0.5.10:8001' or '0.0.0.0:8000 reuseport backlog=16384' -> (address, port)."""
    address, port = value.split()[0].rsplit(":", 1)
    return address, int(port)


def start(conf):
    prefix = pathlib.Path(conf.get("prefix", "/usr/local/kong"))
    # Kong resolves service hosts through /etc/resolv.conf (dnsmasq, then Consul's DNS).
    simulator = KongSimulator(upstream_networks=[VPC_CIDR])
    serve_forever_on(simulator, *_listen(conf["admin_listen"]))
    serve_forever_on(simulator.proxy, *_listen(conf["proxy_listen"]))
    (prefix / "pids").mkdir(parents=True, exist_ok=True)
    (prefix / "pids" / "nginx.pid").write_text(str(os.getpid()))
    notify_ready()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGQUIT, lambda *_: stopping.set())
    stopping.wait()
    return 0


def quit_(conf):
    pid_file = pathlib.Path(conf.get("prefix", "/usr/local/kong")) / "pids" / "nginx.pid"
    try:
        os.kill(int(pid_file.read_text()), signal.SIGQUIT)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["version"]:
        print(f"Kong {VERSION}")
        return 0
    conf_path = argv[argv.index("-c") + 1] if "-c" in argv else None
    conf = read_conf(conf_path) if conf_path else {}
    command = [arg for arg in argv if not arg.startswith("-") and arg != conf_path][:2]
    if command[:1] == ["migrations"] and len(command) == 2:
        return migrations(command[1], conf)
    if command == ["prepare"]:
        (pathlib.Path(conf.get("prefix", "/usr/local/kong")) / "pids").mkdir(parents=True, exist_ok=True)
        return 0
    if command == ["start"]:
        return start(conf)
    if command == ["quit"]:
        return quit_(conf)
    if command == ["reload"]:
        return 0  # nothing is cached from kong.conf but the listeners, which a restart changes
    print(f"kong (lab stand-in): {' '.join(argv) or 'no command'} is not supported", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
