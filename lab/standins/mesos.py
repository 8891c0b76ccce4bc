"""``mesos-master`` / ``mesos-agent``: stand-ins for Clusterd's (aventer-mesos) daemons: a
minimal process answering the health endpoint (``GET /health``, 200) and the version
(``GET /version``) on ``MESOS_IP``:``MESOS_PORT``, as the unit's environment file sets them.
No scheduling: Mesos has no simulator in this project."""

import http.server
import json
import os
import sys

VERSION = "1.11.0"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the base class names it so
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/version":
            body = json.dumps({"version": VERSION, "build_user": "lab stand-in"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_error(404)

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass


def main(default_port):
    address = os.environ.get("MESOS_IP", "127.0.0.1")
    port = int(os.environ.get("MESOS_PORT", default_port))
    http.server.ThreadingHTTPServer((address, port), _Handler).serve_forever()


def master():
    return main(5050)


def agent():
    return main(5051)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
