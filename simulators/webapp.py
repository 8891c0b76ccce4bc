"""The example microservice: tiny HTTP servers that say which instance answered.

Every Marathon task the simulator starts is one of these, so tests can see which instance served a
request that went through vulcand or Kong. One :class:`WebApps` thread serves any number of
instances from a single selector loop, keeping a task to one listening socket and no thread, which
is what lets a benchmark run thousands of tasks.

Each instance answers:

- ``GET /health``: 200 ``{"status": "ok"}``, or 503 ``{"status": "unhealthy"}`` once a test
  marked it so with :meth:`WebApps.set_healthy`;
- anything else: 200 ``{"instance": <name>, "method", "path", "host"}`` with an
  ``X-Instance`` header naming the instance;
- every path, once :meth:`WebApps.set_failing` made it fail: 503 ``{"status": "failing"}``
  (a task up but broken, whatever path its health check probes).

Connections carry one request each (``Connection: close``).
"""

import argparse
import json
import selectors
import socket
import threading
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
MAX_REQUEST_BYTES = 1 << 20
REPLY_TIMEOUT = 5.0


@dataclass
class _Instance:
    name: str
    listener: socket.socket
    healthy: bool = True
    failing: bool = False


@dataclass
class _Connection:
    instance: _Instance
    sock: socket.socket
    received: bytes = b""


class WebApps:
    """Many example-app instances served by one background thread, listening on ``address``."""

    def __init__(self, address=LOOPBACK):
        self.address = address
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._pending = []  # callables the loop runs before its next select
        self._instances = {}  # port -> _Instance
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._thread = None
        self._running = False

    def start(self):
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="webapps", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Close every instance and connection and end the thread."""
        if self._thread is None:
            return
        self._call_in_loop(self._shutdown)
        self._thread.join()
        self._thread = None
        self._wake_reader.close()
        self._wake_writer.close()
        self._selector.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def add(self, name, port=0):
        """Start an instance named ``name`` on ``port`` (0: a free port); its port.

        Raises OSError when the port is taken, as a task would fail to bind.
        """
        listener = socket.socket()
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.address, port))
            listener.listen(64)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        instance = _Instance(name, listener)
        bound_port = listener.getsockname()[1]
        self._call_in_loop(lambda: self._register(bound_port, instance))
        return bound_port

    def remove(self, port):
        """Stop the instance on ``port``; once this returns, connecting to it is refused."""
        self._call_in_loop(lambda: self._unregister(port))

    def set_healthy(self, port, healthy):
        """Make ``/health`` of the instance on ``port`` answer 200 (True) or 503 (False)."""
        with self._lock:
            self._instances[port].healthy = healthy

    def set_failing(self, port, failing):
        """Make every request to the instance on ``port`` answer 503 (True) or as usual (False)."""
        with self._lock:
            self._instances[port].failing = failing

    def ports(self):
        with self._lock:
            return sorted(self._instances)

    # -- the loop ------------------------------------------------------------------------------

    def _call_in_loop(self, action):
        """Run ``action`` on the loop thread and wait for it, so callers see its effect."""
        done = threading.Event()

        def run():
            try:
                action()
            finally:
                done.set()

        with self._lock:
            self._pending.append(run)
        self._wake_writer.send(b"x")
        done.wait()

    def _register(self, port, instance):
        with self._lock:
            self._instances[port] = instance
        self._selector.register(instance.listener, selectors.EVENT_READ, instance)

    def _unregister(self, port):
        with self._lock:
            instance = self._instances.pop(port, None)
        if instance is None:
            return
        self._selector.unregister(instance.listener)
        instance.listener.close()
        for key in list(self._selector.get_map().values()):
            if isinstance(key.data, _Connection) and key.data.instance is instance:
                self._close(key.data)

    def _shutdown(self):
        for port in list(self._instances):
            self._unregister(port)
        self._running = False

    def _loop(self):
        while self._running:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_reader:
                    self._wake_reader.recv(4096)
                    self._run_pending()
                elif isinstance(key.data, _Instance):
                    self._accept(key.data)
                else:
                    self._read(key.data)

    def _run_pending(self):
        with self._lock:
            pending, self._pending = self._pending, []
        for action in pending:
            action()

    def _accept(self, instance):
        try:
            sock, _ = instance.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, _Connection(instance, sock))

    def _read(self, connection):
        try:
            chunk = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        connection.received += chunk
        try:
            request = _parse(connection.received)
        except ValueError:
            self._close(connection)
            return
        if chunk and request is None and len(connection.received) < MAX_REQUEST_BYTES:
            return  # incomplete: wait for more
        if request is not None:
            self._reply(connection, *request)
        self._close(connection)

    def _reply(self, connection, method, path, headers):
        instance = connection.instance
        if instance.failing:
            status, body = 503, {"status": "failing"}
        elif path.split("?")[0] == "/health":
            status, body = (200, {"status": "ok"}) if instance.healthy else (503, {"status": "unhealthy"})
        else:
            status, body = 200, {"instance": instance.name, "method": method, "path": path, "host": headers.get("host")}
        payload = json.dumps(body).encode()
        head = (
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Service Unavailable'}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
            f"X-Instance: {instance.name}\r\nConnection: close\r\n\r\n"
        ).encode()
        # Replies are small: a short blocking send is simpler than write buffering in the loop.
        connection.sock.settimeout(REPLY_TIMEOUT)
        try:
            connection.sock.sendall(head + payload)
        except OSError:
            pass  # the client went away; nothing to tell it

    def _close(self, connection):
        self._selector.unregister(connection.sock)
        connection.sock.close()


def _parse(data):
    """``(method, path, headers)`` once ``data`` holds a whole request, else None.

    Raises ValueError when ``data`` is not HTTP.
    """
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)  # ValueError: not an HTTP request line
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if len(body) < int(headers.get("content-length") or 0):
        return None
    return method, path, headers


def main(argv=None):
    """Run one instance in the foreground: ``python -m simulators.webapp --name web-1``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="webapp", help="the instance name it answers with")
    parser.add_argument("--address", default=LOOPBACK, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    args = parser.parse_args(argv)
    apps = WebApps(args.address).start()
    port = apps.add(args.name, args.port)
    print(f"{args.name}: http://{args.address}:{port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        apps.stop()


if __name__ == "__main__":
    main()
