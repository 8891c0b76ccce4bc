"""``weave``: a stand-in for Weave Net 2.8.1's launcher script (``launch``, ``stop``,
``status``, ``version``).

``launch`` starts, in the background, what Mesos and Docker clients use of Weave here: the
Docker API proxy on /var/run/weave/weave.sock (relayed to Docker's socket; the real proxy
also attaches containers to the overlay, which the lab's flat network does not need) and
the router's port 6783 on the host's private address (peers connect there).
"""

import os
import pathlib
import signal
import socket
import sys
import threading

VERSION = "2.8.1"
PROXY_SOCKET = pathlib.Path("/var/run/weave/weave.sock")
DOCKER_SOCKET = "/var/run/docker.sock"
ROUTER_PORT = 6783
PID_FILE = pathlib.Path("/run/weave-standin.pid")


def _pipe(source, target):
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for end in (source, target):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay(client):
    docker = socket.socket(socket.AF_UNIX)
    docker.connect(DOCKER_SOCKET)
    threading.Thread(target=_pipe, args=(client, docker), daemon=True).start()
    threading.Thread(target=_pipe, args=(docker, client), daemon=True).start()


def _private_address():
    """The address the host's default route leaves from (what the router advertises)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.0.0.2", 53))
        return probe.getsockname()[0]


def _serve():
    PROXY_SOCKET.parent.mkdir(parents=True, exist_ok=True)
    PROXY_SOCKET.unlink(missing_ok=True)
    proxy = socket.socket(socket.AF_UNIX)
    proxy.bind(str(PROXY_SOCKET))
    proxy.listen()
    router = socket.create_server((_private_address(), ROUTER_PORT))
    threading.Thread(target=lambda: [router.accept()[0].close() for _ in iter(int, 1)], daemon=True).start()
    while True:
        _relay(proxy.accept()[0])


def launch():
    if os.fork():
        return 0
    os.setsid()
    if os.fork():
        os._exit(0)
    PID_FILE.write_text(str(os.getpid()))
    devnull = os.open(os.devnull, os.O_RDWR)
    for stream in (0, 1, 2):
        os.dup2(devnull, stream)
    _serve()
    return 0


def stop():
    try:
        os.kill(int(PID_FILE.read_text()), signal.SIGTERM)
    except (FileNotFoundError, ProcessLookupError, ValueError):
        pass
    PID_FILE.unlink(missing_ok=True)
    PROXY_SOCKET.unlink(missing_ok=True)
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else ""
    if command == "launch":
        return launch()
    if command == "stop":
        return stop()
    if command == "version":
        print(f"weave script {VERSION}")
        return 0
    if command == "status":
        running = PROXY_SOCKET.exists()
        print(f"        Version: {VERSION} (lab stand-in)\n        Router: {'running' if running else 'stopped'}")
        return 0 if running else 1
    print(f"weave (lab stand-in): {' '.join(argv) or 'no command'} is not supported", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
