"""What a user does by hand with curl: deploy to Marathon, send requests through the gateway,
read what the registries hold. Loopback only."""

import time

import requests

TIMEOUT = 10.0
POLL_SECONDS = 0.2


class ClientError(RuntimeError):
    """An HTTP call of the sandbox failed; the message names the call and the answer."""


def _checked(response):
    if response.status_code >= 400:
        raise ClientError(
            f"{response.request.method} {response.url} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
    return response.json() if response.content else None


class Marathon:
    """Deployments the way the seed's README does them (``curl -X POST .../v2/apps``)."""

    def __init__(self, url, host=None, auth=None):
        """``host``, ``auth``: Marathon behind the gateway (its ``Host`` and basic-auth)."""
        self.url = url.rstrip("/")
        self.session = requests.Session()
        self.session.auth = auth
        if host:
            self.session.headers["Host"] = host

    def put_app(self, spec):
        return _checked(self.session.post(f"{self.url}/v2/apps", json=spec, timeout=TIMEOUT))

    def scale(self, app_id, instances):
        return _checked(
            self.session.put(f"{self.url}/v2/apps{app_id}", json={"instances": instances}, timeout=TIMEOUT)
        )

    def app(self, app_id):
        return _checked(self.session.get(f"{self.url}/v2/apps{app_id}", timeout=TIMEOUT))["app"]

    def task_ids(self, app_id):
        """Ids of the app's running tasks (each one a web server answering with its id)."""
        tasks = _checked(self.session.get(f"{self.url}/v2/apps{app_id}/tasks", timeout=TIMEOUT))["tasks"]
        return {task["id"] for task in tasks if task.get("state", "TASK_RUNNING") == "TASK_RUNNING"}

    def wait_running(self, app_id, instances, timeout):
        """Wait until the app's deployment is done: ``instances`` tasks running (and healthy)."""
        deadline = time.monotonic() + timeout
        while True:
            app = self.app(app_id)
            ready = app["tasksRunning"] == instances and not app.get("deployments")
            if app.get("healthChecks"):
                ready = ready and app["tasksHealthy"] == instances
            if ready:
                return app
            if time.monotonic() > deadline:
                raise ClientError(
                    f"{app_id}: {app['tasksRunning']} of {instances} tasks running "
                    f"({app.get('tasksHealthy', 0)} healthy) after {timeout:.0f} s"
                )
            time.sleep(POLL_SECONDS)


def probe(url, host, count):
    """Send ``count`` GETs to ``url`` with ``Host: host``; the set of answers.

    An answer is the instance that served it (the example app says so in ``X-Instance``), or
    ``HTTP <status>`` when the gateway answered without reaching an instance.
    """
    answers = set()
    for _ in range(count):
        try:
            response = requests.get(url, headers={"Host": host}, timeout=TIMEOUT)
        except requests.RequestException as error:
            answers.add(f"no answer: {type(error).__name__}")
            continue
        answers.add(response.headers.get("X-Instance") or f"HTTP {response.status_code}")
    return answers


def status(url, host, auth=None):
    """The status code of a GET to ``url`` with ``Host: host`` (and basic-auth ``auth``)."""
    return requests.get(url, headers={"Host": host}, auth=auth, timeout=TIMEOUT).status_code


def kong_routes(admin_url):
    """``[(service name, route hosts, service url)]`` of the gateway (Kong Admin API)."""
    services = _checked(requests.get(f"{admin_url}/services", timeout=TIMEOUT))["data"]
    routes = _checked(requests.get(f"{admin_url}/routes", timeout=TIMEOUT))["data"]
    by_id = {service["id"]: service for service in services}
    table = []
    for route in routes:
        service = by_id.get((route.get("service") or {}).get("id"), {})
        upstream = f"{service.get('protocol')}://{service.get('host')}:{service.get('port')}"
        table.append((service.get("name"), route.get("hosts") or [], upstream))
    return sorted(table, key=lambda row: row[0] or "")


def vulcand_servers(api_url, backend):
    """URLs of a vulcand backend's servers."""
    data = _checked(requests.get(f"{api_url}/v2/backends/{backend}/servers", timeout=TIMEOUT))
    return sorted(server["URL"] for server in data.get("Servers", []))
