"""A real etcd for tests and the sandbox, plus a small etcd v3 client.

etcd is not simulated: :class:`EtcdServer` runs the ``etcd`` binary found on ``PATH`` on
127.0.0.1 with free ports and a throw-away data directory. :class:`EtcdClient` talks to it through
etcd's JSON gateway (``/v3/kv/*``, ``/v3/lease/*``, ``/v3/watch``), where keys and values travel
base64-encoded.
"""

import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse

import requests

STARTUP_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0


class EtcdError(RuntimeError):
    """etcd failed to start, or answered a request with an error."""


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _b64(data):
    """base64 of ``data``: str (encoded as UTF-8) or bytes."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _unb64(text):
    return base64.b64decode(text).decode()


def prefix_range_end(prefix):
    """The exclusive end (bytes) of the key range holding every key that starts with ``prefix``."""
    raw = bytearray(prefix.encode())
    while raw and raw[-1] == 0xFF:
        raw.pop()
    if not raw:
        return b"\0"  # etcd's "to the end of the keyspace"
    raw[-1] += 1
    return bytes(raw)


def _prefix_range(prefix):
    """The ``key``/``range_end`` pair of a request on every key under ``prefix`` ("" for all)."""
    return {"key": _b64(prefix or b"\0"), "range_end": _b64(prefix_range_end(prefix))}


class EtcdServer:
    """A single-member etcd on loopback, in a temporary data directory.

    Short raft timers make it elect itself within milliseconds and bring etcd's minimum lease TTL
    (1.5 election timeouts, rounded up to whole seconds) down to one second, so TTL tests are quick.
    """

    def __init__(self, binary=None):
        self.binary = binary or shutil.which("etcd")
        if not self.binary:
            raise EtcdError("etcd is not installed: no 'etcd' executable on PATH")
        self.url = None
        self._process = None
        self._data_dir = None

    def start(self, attempts=3):
        """Start etcd and wait until it reports healthy; retry when a picked port was taken."""
        for attempt in range(1, attempts + 1):
            try:
                self._launch()
            except EtcdError:
                self.stop()
                if attempt == attempts:
                    raise
            else:
                break
        return self

    def _launch(self):
        client_url = f"http://127.0.0.1:{free_port()}"
        peer_url = f"http://127.0.0.1:{free_port()}"
        self._data_dir = tempfile.mkdtemp(prefix="etcd-")
        log = open(os.path.join(self._data_dir, "etcd.log"), "wb")  # pylint: disable=consider-using-with
        with log:
            self._process = subprocess.Popen(  # pylint: disable=consider-using-with
                [
                    self.binary,
                    "--name=sim",
                    f"--data-dir={os.path.join(self._data_dir, 'data')}",
                    f"--listen-client-urls={client_url}",
                    f"--advertise-client-urls={client_url}",
                    f"--listen-peer-urls={peer_url}",
                    f"--initial-advertise-peer-urls={peer_url}",
                    f"--initial-cluster=sim={peer_url}",
                    "--heartbeat-interval=10",
                    "--election-timeout=100",
                    "--log-level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.url = client_url
        self._wait_healthy()

    def _wait_healthy(self):
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EtcdError(f"etcd exited with status {self._process.returncode}: {self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).json().get("health") == "true":
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.05)
        raise EtcdError(f"etcd at {self.url} not healthy after {STARTUP_TIMEOUT}s: {self.log_tail()}")

    def log_tail(self, lines=20):
        """The last lines etcd logged, for error messages."""
        try:
            with open(os.path.join(self._data_dir, "etcd.log"), encoding="utf-8", errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def stop(self):
        """Stop etcd and delete its data directory."""
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()


class EtcdClient:
    """The etcd v3 calls the simulators need, over the JSON gateway. Keys and values are str.

    Each thread keeps its own kept-alive connection: the vulcand simulator calls etcd from every
    request thread, and a plain ``http.client`` exchange costs a quarter of a ``requests`` one.
    """

    def __init__(self, url):
        self.url = url.rstrip("/")
        parsed = urllib.parse.urlsplit(self.url)
        self._address = (parsed.hostname, parsed.port)
        self._local = threading.local()

    def _call(self, path, body):
        payload = json.dumps(body)
        headers = {"Content-Type": "application/json"}
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            if connection is None:
                connection = http.client.HTTPConnection(*self._address, timeout=REQUEST_TIMEOUT)
                self._local.connection = connection
            try:
                connection.request("POST", path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException) as err:
                connection.close()
                self._local.connection = None
                # The first failure may be a kept-alive connection etcd closed meanwhile. Every
                # call here may be repeated (a repeated grant only leaves a lease unused).
                if attempt == 2:
                    raise EtcdError(f"POST {self.url}{path} failed: {err}") from err
        if response.status != 200:
            raise EtcdError(f"POST {self.url}{path} → {response.status}: {data.decode(errors='replace').strip()}")
        return json.loads(data)

    def put(self, key, value, lease=None):
        """Set ``key`` to ``value``, attached to ``lease`` (an id from :meth:`grant`) if given."""
        body = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            body["lease"] = str(lease)
        return int(self._call("/v3/kv/put", body)["header"]["revision"])

    def put_if_exists(self, key, value, required_key, lease=None):
        """Set ``key`` to ``value`` in one transaction, only if ``required_key`` exists;
        whether it did (and so whether ``key`` was written)."""
        put = {"key": _b64(key), "value": _b64(value)}
        if lease is not None:
            put["lease"] = str(lease)
        reply = self._call("/v3/kv/txn", {
            "compare": [{"key": _b64(required_key), "target": "VERSION", "result": "GREATER", "version": "0"}],
            "success": [{"request_put": put}],
        })
        return bool(reply.get("succeeded"))  # the gateway omits false, protobuf's default

    def get(self, key):
        """The value of ``key``, or None."""
        return self.read(key)[1]

    def read(self, key):
        """``(revision, value of key or None)``."""
        reply = self._call("/v3/kv/range", {"key": _b64(key)})
        kvs = reply.get("kvs", [])
        return int(reply["header"]["revision"]), _unb64(kvs[0].get("value", "")) if kvs else None

    def revision(self):
        """The store's current revision (it grows with every change to any key)."""
        reply = self._call("/v3/kv/range", {"key": _b64("\0"), "count_only": True})
        return int(reply["header"]["revision"])

    def get_prefix(self, prefix):
        """``(revision, {key: value})`` for every key under ``prefix``, read atomically."""
        reply = self._call("/v3/kv/range", _prefix_range(prefix))
        items = {_unb64(kv["key"]): _unb64(kv.get("value", "")) for kv in reply.get("kvs", [])}
        return int(reply["header"]["revision"]), items

    def delete(self, key):
        """Delete ``key``; the number of keys deleted (0 or 1)."""
        return int(self._call("/v3/kv/deleterange", {"key": _b64(key)}).get("deleted", 0))

    def delete_prefix(self, prefix):
        """Delete every key under ``prefix``; the number of keys deleted."""
        return int(self._call("/v3/kv/deleterange", _prefix_range(prefix)).get("deleted", 0))

    def grant(self, ttl_seconds):
        """A new lease id; keys put with it vanish ``ttl_seconds`` after the grant."""
        return int(self._call("/v3/lease/grant", {"TTL": int(ttl_seconds)})["ID"])

    def watch_prefix(self, prefix, start_revision):
        """A :class:`PrefixWatch` of every change under ``prefix`` from ``start_revision`` on."""
        return PrefixWatch(self.url, prefix, start_revision)


class PrefixWatch:
    """A streaming ``/v3/watch`` on a key prefix; iterate for ``(revision, keys changed)`` of
    each batch of changes.

    It owns its socket so that :meth:`close` can interrupt a blocked read from another thread.
    """

    def __init__(self, url, prefix, start_revision):
        parsed = urllib.parse.urlsplit(url)
        self._connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=REQUEST_TIMEOUT)
        body = {"create_request": {**_prefix_range(prefix), "start_revision": str(start_revision)}}
        self._connection.request("POST", "/v3/watch", body=json.dumps(body))
        self._response = self._connection.getresponse()
        if self._response.status != 200:
            raise EtcdError(f"watch on {url} → {self._response.status}: {self._response.read()!r}")
        self._connection.sock.settimeout(None)  # a watch waits as long as nothing changes
        self._closed = threading.Event()

    def __iter__(self):
        """Yield ``(revision, keys)`` of each batch of changes; stops when closed or etcd goes away."""
        try:
            while not self._closed.is_set():
                try:
                    line = self._response.readline()
                except (OSError, ValueError, http.client.HTTPException):
                    return  # the socket was shut down (close()) or etcd went away
                if not line:
                    return
                result = json.loads(line).get("result", {})
                if result.get("events"):
                    keys = [_unb64(event["kv"]["key"]) for event in result["events"]]
                    yield int(result["header"]["revision"]), keys
        finally:
            self._connection.close()

    def close(self):
        """End the watch: a thread iterating it returns promptly and releases the connection.

        Only the socket is shut down here; closing the connection under the reading thread
        would race with http.client's own cleanup.
        """
        self._closed.set()
        if self._connection.sock is not None:
            try:
                self._connection.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
