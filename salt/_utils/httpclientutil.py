"""
The one HTTP client of the project: every registry API (Consul, Kong, vulcand, Marathon) is
reached through :class:`HTTPClient`.

- One :class:`requests.Session` per client (connection reuse, pool sized for the concurrent
  writes of the registration core).
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

import json
import logging
import threading
import time
from collections import Counter

import requests
import requests.adapters
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

DEFAULT_TIMEOUT = (3.05, 10)  # (connect, read) seconds
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = 0.1  # seconds before the first retry; doubled for each further one
MAX_BACKOFF = 5.0
# The registration core writes with up to 8 workers; keep a connection for each.
POOL_SIZE = 16


class HTTPRequestError(CommandExecutionError):
    """A request that failed: the system, method, URL, status and the server's message."""

    def __init__(self, system, method, url, status=None, message=""):
        self.system = system
        self.method = method
        self.url = url
        self.status = status
        self.message = message
        outcome = f"HTTP {status}" if status is not None else "failed"
        text = f"{system}: {method} {url} {outcome}"
        super().__init__(f"{text}: {message}" if message else text)


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


def server_message(response):
    """The error text a server put in ``response``, whatever its format.

    Kong, vulcand and Marathon answer JSON with a ``message`` (Kong adds the offending
    ``fields``); Consul answers plain text.
    """
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()
    if isinstance(body, dict) and "message" in body:
        message = str(body["message"])
        if body.get("fields"):
            message += f" (fields: {json.dumps(body['fields'], sort_keys=True)})"
        return message
    return response.text.strip()


class HTTPClient:
    """A JSON HTTP client for one system (``system`` names it in errors and counters).

    :param system: the name used in errors and in :data:`REQUEST_COUNTER`, e.g. ``consul``
    :param base_url: prefix of every request path, e.g. ``http://consul.service.consul:8500``
    :param headers: sent with every request (e.g. Consul's ``X-Consul-Token``)
    :param timeout: ``requests`` timeout, seconds or (connect, read)
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
        self.timeout = timeout
        self.attempts = max(1, int(attempts))
        self.backoff = backoff
        self.session = requests.Session()
        self.session.headers.update(headers or {})
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=POOL_SIZE)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def put(self, path, **kwargs):
        return self.request("PUT", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)

    def delete(self, path, **kwargs):
        return self.request("DELETE", path, **kwargs)

    def request(self, method, path, json=None, params=None, idempotent=None):  # noqa: A002
        """Send one request and return its decoded body.

        A JSON reply is decoded, any other non-empty reply is returned as text, an empty one as
        None. Raises :class:`NotFoundError` on 404, :class:`UnreachableError` when the server
        cannot be reached, :class:`HTTPRequestError` on any other non-2xx status.

        :param path: appended to the base URL; the caller quotes path segments
        :param idempotent: whether retries are safe; defaults by method (POST is not)
        """
        method = method.upper()
        url = self.base_url + path
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        attempts = self.attempts if idempotent else 1
        for attempt in range(1, attempts + 1):
            REQUEST_COUNTER.add(self.system, method)
            try:
                response = self.session.request(
                    method, url, json=json, params=params, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as err:
                if attempt < attempts:
                    self._pause(attempt, method, url, err)
                    continue
                raise UnreachableError(self.system, method, url, message=_reason(err)) from err
            if response.status_code in RETRYABLE_STATUSES and attempt < attempts:
                self._pause(attempt, method, url, f"HTTP {response.status_code}", response)
                continue
            return self._decode(method, url, response)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _pause(self, attempt, method, url, reason, response=None):
        delay = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        retry_after = response.headers.get("Retry-After") if response is not None else None
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), MAX_BACKOFF)
        log.debug("%s: %s %s: %s; retry %d in %.2fs", self.system, method, url, reason,
                  attempt, delay)
        time.sleep(delay)

    def _decode(self, method, url, response):
        if response.status_code == 404:
            raise NotFoundError(self.system, method, url, 404, server_message(response))
        if not response.ok:
            raise HTTPRequestError(
                self.system, method, url, response.status_code, server_message(response)
            )
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            return response.text

    def close(self):
        self.session.close()


def _reason(err):
    """A one-line reason for a requests exception (their str() nests urllib3 reprs)."""
    if isinstance(err, requests.Timeout):
        return "timed out"
    cause = err.args[0] if err.args else err
    reason = getattr(cause, "reason", cause)
    text = str(reason)
    # urllib3 prefixes "<urllib3.connection.HTTPConnection object at 0x...>: " to the cause.
    return text.split(">: ", 1)[-1] if ">: " in text else text
