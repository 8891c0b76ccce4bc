"""A tiny threaded HTTP server that every API simulator builds on.

A simulator subclasses :class:`Simulator` and declares its API with :func:`route`::

    class Echo(Simulator):
        name = "echo"

        @route("GET", r"/echo/(?P<word>[^/]+)")
        def echo(self, request, word):
            return json_response({"word": word})

The server binds 127.0.0.1 only, on port 0 (a free port) unless told otherwise, and runs in a
background thread between :meth:`Simulator.start` and :meth:`Simulator.stop` (or a ``with``
block). Path groups are percent-decoded before they reach the handler, so clients must encode
IDs containing ``/`` just as they must for the real servers.

Every request is counted per (method, handler name) in :attr:`Simulator.request_counts`, which
benchmarks read, and :attr:`Simulator.faults` lets tests make requests fail, stall or lose their
connection.
"""

import contextlib
import email.parser
import gc
import http.client
import http.server
import ipaddress
import json
import logging
import re
import selectors
import socket
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Headers that describe one connection, never forwarded by a proxy (RFC 9110, 7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
    "upgrade", "content-length",
})
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"


@dataclass
class Response:
    """What a handler returns: sent as a single write, with a Content-Length.

    ``stream``, when set, replaces ``body``: an iterable of byte chunks written as they come
    (server-sent events, for instance); the connection is closed after the last chunk.
    """

    status: int = 200
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    stream: object = None


_collector_pauses = 0
_collector_lock = threading.Lock()


@contextlib.contextmanager
def collector_paused():
    """The cyclic garbage collector off while any thread is in such a block (a listing of
    10,000 objects, built and serialised at once): the views it builds set off collections that
    scan every stored object again, half of the listing's CPU. Only for blocks that never wait
    (not around a blocking query), so that the collector is never off for long."""
    global _collector_pauses  # pylint: disable=global-statement
    with _collector_lock:
        _collector_pauses += 1
        gc.disable()
    try:
        yield
    finally:
        with _collector_lock:
            _collector_pauses -= 1
            if not _collector_pauses:
                gc.enable()


def json_response(data, status=200, headers=None, content_type=JSON_TYPE):
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": content_type, **(headers or {})})


def text_response(text, status=200, headers=None):
    return Response(status, text.encode(), {"Content-Type": TEXT_TYPE, **(headers or {})})


def empty_response(status=200, headers=None):
    return Response(status, b"", dict(headers or {}))


class Abort(Exception):
    """Raised anywhere below a handler to answer with ``response`` at once."""

    def __init__(self, response):
        super().__init__(response.status)
        self.response = response


class DropConnection(Exception):
    """Raised below a handler to close the connection without any answer."""


class BodyError(ValueError):
    """A request body that cannot be decoded as the handler asked."""


@dataclass
class Request:
    method: str
    path: str  # raw (still percent-encoded) path, without the query string
    query: dict  # name -> list of values, blank values kept (Consul's bare ``?recurse``)
    headers: object  # email.message.Message: case-insensitive .get()
    body: bytes
    client: tuple

    def arg(self, name, default=None):
        """First value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else default

    def has_arg(self, name):
        return name in self.query

    @property
    def content_type(self):
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json(self):
        """The body decoded as JSON; :class:`BodyError` says why when it is not."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise BodyError(str(err)) from err

    def form(self):
        """The body of a url-encoded or multipart form, as name -> list of values."""
        if self.content_type == "multipart/form-data":
            return self._multipart()
        try:
            return urllib.parse.parse_qs(self.body.decode(), keep_blank_values=True)
        except UnicodeDecodeError as err:
            raise BodyError(str(err)) from err

    def _multipart(self):
        header = f"Content-Type: {self.headers.get('Content-Type')}\r\n\r\n".encode()
        message = email.parser.BytesParser().parsebytes(header + self.body)
        if not message.is_multipart():
            raise BodyError("malformed multipart body")
        fields = {}
        for part in message.get_payload():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                raise BodyError("multipart part without a name")
            value = part.get_payload(decode=True).decode()
            fields.setdefault(name, []).append(value)
        return fields


def route(method, pattern):
    """Declare a handler for ``method`` (or ``"*"`` for any) on paths fully matching ``pattern``.

    Stackable, so one handler can serve several methods or paths. Named groups of the pattern
    are passed to the handler as keyword arguments. Patterns are tried in declaration order and
    the first one matching the path owns it, like the servers' own routers: if none of that
    pattern's methods fits, the answer is 405. So declare specific paths before broad ones.
    """

    def mark(handler):
        handler.__dict__.setdefault("routes", []).append((method, pattern))
        return handler

    return mark


@dataclass
class Route:
    regex: re.Pattern
    handlers: dict  # method (or "*") -> handler method name


@dataclass
class _Fault:
    kind: str  # "error", "delay" or "drop"
    remaining: object  # requests left to affect, or None for "until cleared"
    path: object  # compiled regex the request path must match (search), or None for all
    status: int = 500
    seconds: float = 0.0


class Faults:
    """Fault injection shared by all simulators; each rule applies to matching requests.

    Rules are checked in the order they were added; the first matching error or drop rule
    decides the request, and every matching delay rule adds its delay before that.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []

    def fail(self, count=1, status=500, path=None):
        """Answer the next ``count`` matching requests with ``status`` (None: until cleared)."""
        self._add(_Fault("error", count, _compile(path), status=status))

    def delay(self, seconds, count=None, path=None):
        """Hold matching requests for ``seconds`` before handling them."""
        self._add(_Fault("delay", count, _compile(path), seconds=seconds))

    def drop(self, count=1, path=None):
        """Close the connection of the next ``count`` matching requests without answering."""
        self._add(_Fault("drop", count, _compile(path)))

    def clear(self):
        with self._lock:
            self._rules.clear()

    def _add(self, rule):
        with self._lock:
            self._rules.append(rule)

    def take(self, path):
        """Consume the rules matching ``path``: returns (total delay, error/drop rule or None)."""
        delay, verdict = 0.0, None
        with self._lock:
            for rule in list(self._rules):
                if rule.path is not None and not rule.path.search(path):
                    continue
                if rule.kind == "delay":
                    delay += rule.seconds
                elif verdict is None:
                    verdict = rule
                else:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self._rules.remove(rule)
        return delay, verdict


def _compile(path):
    return re.compile(path) if path is not None else None


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, simulator):
        self.simulator = simulator
        self.connections = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


def serve_forever_on(simulator, address, port):
    """Answer ``simulator``'s API on ``address``:``port`` in a background thread until the
    process ends: a stand-in on a real host listens where the real server would (its private
    address as well as loopback), not on a loopback port of its own choosing."""
    server = _Server((address, port), simulator)
    threading.Thread(target=server.serve_forever, name=f"{simulator.name}-{address}", daemon=True).start()
    return server


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients pool connections

    def setup(self):
        super().setup()
        # Each reply is one write, but Nagle would still delay the next request's reply.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self):
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except DropConnection:
            self.close_connection = True
        except (ConnectionError, socket.timeout):
            self.close_connection = True

    def __getattr__(self, name):
        # BaseHTTPRequestHandler looks up do_<METHOD>; every method goes to one dispatcher.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self):
        split = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            method=self.command,
            path=split.path,
            query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=self.rfile.read(length) if length else b"",
            client=self.client_address,
        )
        self._send(self.server.simulator.handle(request))

    def _send(self, response):
        lines = [f"HTTP/1.1 {response.status} {self.responses.get(response.status, ('',))[0]}"]
        headers = {"Date": self.date_time_string(), **response.headers}
        if response.stream is None:
            headers["Content-Length"] = str(len(response.body))
        else:
            headers["Connection"] = "close"
            self.close_connection = True
        lines += [f"{name}: {value}" for name, value in headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if response.stream is None:
            self.wfile.write(head + (response.body if self.command != "HEAD" else b""))
            return
        self.wfile.write(head)
        for chunk in response.stream:
            self.wfile.write(chunk)

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        log.debug("%s %s", self.server.simulator.name, format % args)


class AcceptLoop:
    """One thread and one selector accepting the connections of many simulators' servers
    (vulcand's proxy listeners: ten thousand of them, each with a thread, a selector and a
    wake-up socket pair of its own, would exceed the open files a process may have, where the
    real vulcand needs one descriptor per listener)."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._waker, self._wake_receiver = socket.socketpair()
        self._selector.register(self._wake_receiver, selectors.EVENT_READ)
        self._thread = threading.Thread(target=self._serve, name="accept-loop", daemon=True)
        self._thread.start()

    def add(self, server):
        self._selector.register(server, selectors.EVENT_READ, server)

    def remove(self, server):
        self._selector.unregister(server)

    def _serve(self):
        while True:
            for key, _ in self._selector.select():
                if key.fileobj is self._wake_receiver:
                    return
                try:
                    key.data.handle_request()
                except OSError:
                    pass  # removed and closed since select() saw it

    def close(self):
        self._waker.send(b"x")
        self._thread.join()
        self._selector.close()
        self._waker.close()
        self._wake_receiver.close()


class Simulator:
    """Base of every simulator: route table, dispatch, counters, faults and lifecycle."""

    name = "simulator"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        routes = {}
        for attr, value in _members(cls):
            for method, pattern in getattr(value, "routes", ()):
                routes.setdefault(pattern, Route(re.compile(pattern), {})).handlers[method] = attr
        cls._routes = list(routes.values())

    def __init__(self, port=0, address=LOOPBACK, accept_loop=None):
        self.port = port
        self.address = address  # where it listens (its URL stays on loopback)
        self._accept_loop = accept_loop  # an AcceptLoop shared with other simulators, or None
        self.faults = Faults()
        self.request_counts = Counter()
        self._counts_lock = threading.Lock()
        self._server = None
        self._thread = None
        self._waker = self._wake_receiver = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self):
        self._server = _Server((self.address, self.port), self)
        self.port = self._server.server_address[1]
        if self._accept_loop is not None:
            self._server.timeout = 0
            self._accept_loop.add(self._server)
            return self
        self._waker, self._wake_receiver = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name=f"{self.name}-sim", daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        """Accept connections until :meth:`stop` writes to the wake-up socket.

        No polling interval: a vulcand simulator may hold a thousand idle listeners, and
        ``serve_forever``'s periodic wake-ups would then cost more than the traffic.
        """
        self._server.timeout = 0  # handle_request() below only runs when a connection waits
        with selectors.DefaultSelector() as selector:
            selector.register(self._server, selectors.EVENT_READ)
            selector.register(self._wake_receiver, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    if key.fileobj is self._wake_receiver:
                        return
                    self._server.handle_request()

    def stop(self):
        if self._server is None:
            return
        if self._accept_loop is not None:
            self._accept_loop.remove(self._server)
        else:
            self._waker.send(b"x")
            self._thread.join()
        self._server.server_close()
        # Kept-alive connections would otherwise keep being served after stop().
        with self._server.connections_lock:
            for connection in list(self._server.connections):
                _shutdown_socket(connection)
        if self._waker is not None:
            self._waker.close()
            self._wake_receiver.close()
        self._server = self._thread = None
        self._waker = self._wake_receiver = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def url(self):
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def urls(self):
        """Every URL this simulator serves, by role (printed by ``python -m simulators``)."""
        return {"url": self.url}

    def reset(self):
        """Forget all state. Subclasses clear their data and call this."""
        self.faults.clear()

    @classmethod
    def add_arguments(cls, parser):
        """Add this simulator's constructor options to the ``python -m simulators`` parser."""

    # -- dispatch ----------------------------------------------------------------------------

    def handle(self, request):
        """The response to ``request`` (an injected drop fault closes the connection)."""
        owner, groups = next(
            ((r, m) for r in self._routes if (m := r.regex.fullmatch(request.path))), (None, None)
        )
        handler_name = None
        if owner is not None:
            handler_name = owner.handlers.get(request.method) or owner.handlers.get("*")
        self._count(request.method, handler_name)

        delay, fault = self.faults.take(request.path)
        if delay:
            time.sleep(delay)
        if fault is not None:
            if fault.kind == "drop":
                raise DropConnection()
            return self.error(fault.status, f"injected fault {fault.status}")

        try:
            if owner is None:
                return self.not_found(request)
            if handler_name is None:
                return self.method_not_allowed(request, sorted(owner.handlers))
            arguments = {
                key: urllib.parse.unquote(value)
                for key, value in groups.groupdict().items()
                if value is not None
            }
            return getattr(self, handler_name)(request, **arguments)
        except Abort as abort:
            return abort.response
        except DropConnection:
            raise
        except Exception:  # a simulator bug must show up as a 500, not a hung client
            log.exception("%s failed on %s %s", self.name, request.method, request.path)
            return self.error(500, "simulator internal error")

    def _count(self, method, handler_name):
        with self._counts_lock:
            self.request_counts[(method, handler_name)] += 1

    # -- replies that differ per server: override ----------------------------------------------

    def error(self, status, message):
        return json_response({"message": message}, status)

    def not_found(self, request):
        return self.error(404, "Not found")

    def method_not_allowed(self, request, allowed):
        return self.error(405, "Method not allowed")


class UpstreamError(Exception):
    """A proxied request got no answer; ``timed_out`` tells a timeout from a refusal."""

    def __init__(self, message, timed_out):
        super().__init__(message)
        self.timed_out = timed_out


def reachable_address(host, networks=()):
    """The address a simulator's proxy may contact for ``host`` (a name or an address), or None.

    Loopback only (``localhost`` is 127.0.0.1), so that no test traffic leaves the machine and
    no name is looked up. With ``networks`` (``ipaddress`` networks: the opt-in of a stand-in
    on real hosts inside a network namespace), also the addresses within them, names resolved
    through the system resolver as the real proxy resolves them.
    """
    if host == "localhost":
        return LOOPBACK
    try:
        candidates = [ipaddress.ip_address(host or "")]
    except ValueError:
        if not (host and networks):
            return None
        try:
            candidates = [ipaddress.ip_address(info[4][0])
                          for info in socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)]
        except (OSError, UnicodeError):
            return None
    return next((str(address) for address in candidates
                 if address.is_loopback or any(address in network for network in networks)), None)


def forward(request, host, port, target, headers, connect_timeout, read_timeout):
    """Send ``request`` to ``host:port`` as ``target`` (path + query) with ``headers``.

    Returns the upstream's answer as a :class:`Response` without hop-by-hop headers; raises
    :class:`UpstreamError` when there is none. Proxies in the simulators share this.
    """
    headers = {name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP}
    connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
    try:
        connection.connect()
        connection.sock.settimeout(read_timeout)
        connection.request(request.method, target, body=request.body or None, headers=headers)
        reply = connection.getresponse()
        body = reply.read()
    except TimeoutError as err:
        raise UpstreamError(f"{host}:{port} timed out", timed_out=True) from err
    except (OSError, http.client.HTTPException) as err:
        raise UpstreamError(f"{host}:{port}: {err}", timed_out=False) from err
    finally:
        connection.close()
    kept = {name: value for name, value in reply.getheaders() if name.lower() not in HOP_BY_HOP}
    return Response(reply.status, body, kept)


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text):
    """Seconds in a Go duration string ("1m30s", "250ms", "0"); ValueError names a bad one."""
    sign, body = (-1, text[1:]) if text[:1] == "-" else (1, text.lstrip("+"))
    if body == "0":
        return 0.0
    parts = _DURATION_PART.findall(body)
    if not body or "".join(number + unit for number, unit in parts) != body:
        raise ValueError(f'time: invalid duration "{text}"')
    return sign * sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def _members(cls):
    seen = {}
    for klass in reversed(cls.__mro__):
        seen.update(vars(klass))
    return seen.items()


def _shutdown_socket(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer
