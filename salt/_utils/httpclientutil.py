"""
The one HTTP client of the project: every registry API (Consul, Kong, vulcand, Marathon) is
reached through :class:`HTTPClient`.

- Keep-alive HTTP/1.1 connections reused per client (kept for the concurrent writes of the
  registration core), requests written and replies read on the socket itself. A registration
  resync sends thousands of requests: requests' work per request (environment, netrc and cookie
  lookups) would cost more than the rest of the client, urllib3's pool (URL parsing, retry and
  timeout objects, response wrapping) as much again, and http.client's header parsing (the
  email package) a third of a write's CPU. The proxy environment (``http_proxy``,
  ``https_proxy``, ``no_proxy``) is read once, when the client is made; proxied clients go
  through urllib3's proxy manager.
- Timeouts on every request.
- Retries with exponential backoff on connection errors, timeouts, 5xx and 429, for idempotent
  requests only (GET, HEAD, PUT, DELETE, and calls the caller marks idempotent, such as
  vulcand's upsert-by-id POSTs).
- Errors that name the system, method, URL, status and the server's own message (Consul's plain
  text, Kong's ``message``/``fields``, vulcand's and Marathon's ``message``), typed so callers
  can tell "not found" (:class:`NotFoundError`) and "unreachable" (:class:`UnreachableError`)
  apart. They subclass :class:`~salt.exceptions.CommandExecutionError`, so execution modules
  and states can let them cross their boundary as they are.
- A process-wide :data:`REQUEST_COUNTER` of requests sent per system and method (every attempt
  counts), which the benchmarks read.

Modules import it directly (``import httpclientutil``); it needs nothing from the loader.
"""

import collections
import http.client
import json
import logging
import select
import socket
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter

import urllib3
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

# Salt sets the root logger to its lowest level and filters in its handlers, so urllib3's DEBUG
# line for every request would be built and handed to them: a tenth of a resync's CPU. Unless
# the operator set a level for urllib3 (Salt's log_granular_levels), it logs from INFO up.
if logging.getLogger("urllib3").level == logging.NOTSET:
    logging.getLogger("urllib3").setLevel(logging.INFO)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

DEFAULT_TIMEOUT = (3.05, 10)  # (connect, read) seconds
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = 0.1  # seconds before the first retry; doubled for each further one
MAX_BACKOFF = 5.0
# Connections kept per host: one for each of up to 32 concurrent writers (max_workers, 8 by default).
POOL_SIZE = 32


class HTTPRequestError(CommandExecutionError):
    """A request that failed: the system, method, URL, status and the server's message."""

    def __init__(self, system, method, url, status=None, message=""):
        self.system = system
        outcome = f"HTTP {status}" if status is not None else "failed"
        text = f"{system}: {method} {url} {outcome}"
        super().__init__(f"{text}: {message}" if message else text)
        self.method = method
        self.url = url
        self.status = status
        self.server_message = message  # not ``message``: Salt's exceptions keep the whole text there


class NotFoundError(HTTPRequestError):
    """The server answered 404."""


class UnreachableError(HTTPRequestError):
    """No answer at all: connection refused or reset, or timed out."""


class RequestCounter:
    """Requests sent, per (system, method); thread safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._counts = Counter()

    def add(self, system, method):
        with self._lock:
            self._counts[(system, method)] += 1

    def snapshot(self):
        """A copy of the counts: ``{(system, method): n}``."""
        with self._lock:
            return Counter(self._counts)

    def by_system(self):
        """Requests per system: ``{system: n}``."""
        totals = Counter()
        for (system, _), count in self.snapshot().items():
            totals[system] += count
        return totals

    def reset(self):
        with self._lock:
            self._counts.clear()


REQUEST_COUNTER = RequestCounter()


def server_message(body):
    """The error text a server put in the reply ``body`` (bytes), whatever its format.

    Kong, vulcand and Marathon answer JSON with a ``message`` (Kong adds the offending
    ``fields``); Consul answers plain text.
    """
    text = body.decode("utf-8", "replace").strip()
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    if isinstance(decoded, dict) and "message" in decoded:
        message = str(decoded["message"])
        if decoded.get("fields"):
            message += f" (fields: {json.dumps(decoded['fields'], sort_keys=True)})"
        return message
    return text


def _proxy_manager(url):
    """urllib3's connections through the proxy the environment names for ``url``, or None."""
    proxies = urllib.request.getproxies_environment()
    parsed = urllib.parse.urlsplit(url)
    proxy = proxies.get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass_environment(parsed.hostname or "", proxies):
        return urllib3.ProxyManager(proxy, num_pools=2, maxsize=POOL_SIZE, retries=False)
    return None


class _Headers(dict):
    """A reply's headers: names lower-cased, looked up in any case."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)


class _Reply:
    """What a request got back: ``status``, ``headers`` and the whole body, ``data``."""

    __slots__ = ("status", "headers", "data")

    def __init__(self, status, headers, data):
        self.status, self.headers, self.data = status, headers, data


MAX_LINE = 65536  # bytes of a status or header line, as http.client allows
MAX_HEADERS = 100
_NO_BODY_STATUSES = frozenset({204, 304})


class _Connection:
    """One HTTP/1.1 keep-alive connection: requests written and replies read on the socket
    itself. http.client parses every reply's headers with the email package, which cost a
    third of the CPU of a registry write; these replies need only a few of them."""

    def __init__(self, sock, host_header):
        self.sock = sock
        self._host_header = host_header
        self._reader = sock.makefile("rb")

    def request(self, method, target, body, headers):
        """Send one request and read its reply: ``(_Reply, whether the connection can be
        used again)``."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        try:
            self.sock.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n"
                              + (body or b""))
            status_line = self._line()
        except (BrokenPipeError, ConnectionResetError) as err:
            raise http.client.RemoteDisconnected(f"connection closed: {err}") from err
        if not status_line:
            raise http.client.RemoteDisconnected("the server closed the connection without "
                                                 "a reply")
        return self._read_reply(method, status_line)

    def _read_reply(self, method, status_line):
        while True:
            version, _, rest = status_line.partition(b" ")
            code = rest[:3]
            if not version.startswith(b"HTTP/1.") or not code.isdigit():
                raise http.client.BadStatusLine(status_line.decode("latin-1").strip())
            status = int(code)
            headers = self._headers()
            if status >= 200 or status == 101:
                break
            status_line = self._line()  # a 1xx interim reply: the real one follows
        connection = (headers.get("connection") or "").lower()
        reusable = "close" not in connection and (version != b"HTTP/1.0"
                                                  or "keep-alive" in connection)
        if method == "HEAD" or status in _NO_BODY_STATUSES or status < 200:
            return _Reply(status, headers, b""), reusable
        if "chunked" in (headers.get("transfer-encoding") or "").lower():
            return _Reply(status, headers, self._chunked()), reusable
        length = headers.get("content-length")
        if length is None:
            return _Reply(status, headers, self._reader.read()), False  # ends at the close
        data = self._reader.read(int(length))
        if len(data) != int(length):
            raise http.client.IncompleteRead(data, int(length) - len(data))
        return _Reply(status, headers, data), reusable

    def _line(self):
        line = self._reader.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("reply line")
        return line

    def _headers(self):
        headers = _Headers()
        for _ in range(MAX_HEADERS + 1):
            line = self._line()
            if line in (b"\r\n", b"\n", b""):
                return headers
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        raise http.client.HTTPException(f"more than {MAX_HEADERS} reply headers")

    def _chunked(self):
        chunks = []
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise http.client.IncompleteRead(b"".join(chunks)) from None
            if size == 0:
                while self._line() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunk = self._reader.read(size)
            if len(chunk) != size:
                raise http.client.IncompleteRead(b"".join(chunks) + chunk)
            chunks.append(chunk)
            self._line()  # the CRLF after the chunk

    def close(self):
        self._reader.close()
        self.sock.close()


class _Connections:
    """Keep-alive connections to one server, each used by one request at a time.

    An idle connection that the server has closed meanwhile is readable (at its end of file):
    it is dropped before use, as urllib3 does, rather than failing the request sent on it.
    """

    def __init__(self, url, timeout):
        parsed = urllib.parse.urlsplit(url)
        self.https = parsed.scheme == "https"
        self.host = parsed.hostname or ""
        self.port = parsed.port or (443 if self.https else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if parsed.port is None else f"{host}:{self.port}"
        self.connect_timeout, self.read_timeout = timeout
        self._context = ssl.create_default_context() if self.https else None
        self._idle = collections.deque()

    def request(self, method, target, body, headers):
        connection = self._idle_connection()
        if connection is not None:
            try:
                return self._exchange(connection, method, target, body, headers)
            except http.client.RemoteDisconnected:
                # The server closed it as the request went out (an idle timeout racing the
                # check above): it answered nothing, so the request goes again on a new one.
                pass
        return self._exchange(self._connect(), method, target, body, headers)

    def _exchange(self, connection, method, target, body, headers):
        try:
            reply, reusable = connection.request(method, target, body, headers)
        except BaseException:
            connection.close()
            raise
        if reusable and len(self._idle) < POOL_SIZE:
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def _idle_connection(self):
        while True:
            try:
                connection = self._idle.pop()
            except IndexError:
                return None
            poll = select.poll()
            poll.register(connection.sock, select.POLLIN)
            if not poll.poll(0):
                return connection
            connection.close()  # closed by the server while idle

    def _connect(self):
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock, self.host_header)

    def close(self):
        while self._idle:
            self._idle.pop().close()


class HTTPClient:
    """A JSON HTTP client for one system (``system`` names it in errors and counters).

    :param system: the name used in errors and in :data:`REQUEST_COUNTER`, e.g. ``consul``
    :param base_url: prefix of every request path, e.g. ``http://consul.service.consul:8500``
    :param headers: sent with every request (e.g. Consul's ``X-Consul-Token``)
    :param timeout: seconds, or (connect, read) seconds
    :param attempts: tries per idempotent request (1 disables retries)
    :param backoff: seconds before the first retry, doubled for each further one
    """

    def __init__(
        self,
        system,
        base_url,
        headers=None,
        timeout=DEFAULT_TIMEOUT,
        attempts=DEFAULT_ATTEMPTS,
        backoff=DEFAULT_BACKOFF,
    ):
        if not base_url:
            raise CommandExecutionError(f"{system}: no URL configured")
        self.system = system
        self.base_url = base_url.rstrip("/")
        connect, read = timeout if isinstance(timeout, (tuple, list)) else (timeout, timeout)
        self.timeout = urllib3.Timeout(connect=connect, read=read)
        self.attempts = max(1, int(attempts))
        self.backoff = backoff
        self.headers = {"Accept": "application/json", **(headers or {})}
        self._proxy = _proxy_manager(self.base_url)
        self._connections = _Connections(self.base_url, (connect, read))
        self._base_path = urllib.parse.urlsplit(self.base_url).path

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def request(self, method, path, json=None, params=None, idempotent=None, headers=None,  # noqa: A002
                raw=False):
        """Send one request and return its decoded body.

        A JSON reply is decoded, any other non-empty reply is returned as text, an empty one as
        None; with ``raw``, the body is returned as it came (bytes), for callers that decode a
        large reply piece by piece. Raises :class:`NotFoundError` on 404, :class:`UnreachableError` when the server
        cannot be reached, :class:`HTTPRequestError` on any other non-2xx status.

        :param path: appended to the base URL; the caller quotes path segments
        :param json: the body, sent as JSON
        :param params: query parameters, a mapping or (name, value) pairs
        :param idempotent: whether retries are safe; defaults by method (POST is not)
        :param headers: sent with this request, over the client's own
        """
        method = method.upper()
        url = self.base_url + path
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params, doseq=True)
        headers, body = {**self.headers, **(headers or {})}, None
        if json is not None:
            headers = {**headers, "Content-Type": "application/json"}
            body = _dumps(json)
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempts = self.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            REQUEST_COUNTER.add(self.system, method)
            try:
                response = self._send(method, url, body, headers)
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as err:
                if attempt < attempts:
                    self._pause(attempt, method, url, err)
                    continue
                raise UnreachableError(self.system, method, url, message=_reason(err)) from err
            if response.status in RETRYABLE_STATUSES and attempt < attempts:
                self._pause(attempt, method, url, f"HTTP {response.status}", response)
                continue
            return self._decode(method, url, response, raw)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _send(self, method, url, body, headers):
        """One attempt; redirects are answers like any other, never followed."""
        if self._proxy is not None:
            return self._proxy.request(method, url, body=body, headers=headers,
                                       timeout=self.timeout, redirect=False)
        return self._connections.request(
            method, self._base_path + url[len(self.base_url):], body, headers)

    def _pause(self, attempt, method, url, reason, response=None):
        delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), MAX_BACKOFF)
        log.debug("%s: %s %s: %s; retry %d in %.2fs", self.system, method, url, reason,
                  attempt, delay)
        time.sleep(delay)

    def _decode(self, method, url, response, raw=False):
        if response.status == 404:
            raise NotFoundError(self.system, method, url, 404, server_message(response.data))
        if not 200 <= response.status < 300:
            raise HTTPRequestError(
                self.system, method, url, response.status, server_message(response.data)
            )
        if raw:
            return response.data
        if not response.data:
            return None
        try:
            return json.loads(response.data)
        except ValueError:
            return response.data.decode("utf-8", "replace")

    def close(self):
        self._connections.close()
        if self._proxy is not None:
            self._proxy.clear()


def _dumps(data):
    return json.dumps(data, separators=(",", ":")).encode()


def _reason(err):
    """A one-line reason for a connection error (urllib3's str() nests connection reprs)."""
    if isinstance(err, TimeoutError):
        return "timed out"
    # urllib3 2 derives NewConnectionError (refused, unresolvable...) from its timeout error.
    if isinstance(err, urllib3.exceptions.TimeoutError) and not isinstance(
        err, urllib3.exceptions.NewConnectionError
    ):
        return "timed out"
    text = str(getattr(err, "reason", None) or err)
    # urllib3 prefixes "<urllib3.connection.HTTPConnection object at 0x...>: " to the cause.
    return text.split(">: ", 1)[-1] if ">: " in text else text
