"""The Marathon registrar engine in a process of its own, as Salt runs it, for the benchmarks:
``python -m bench.engine CONFIG`` (a JSON object: ``settings``, the ``platform:`` settings;
``options``, the engine's; ``mode``), so that its CPU time and resident memory are its own.

Modes, each speaking JSON lines on stdout:

``run``
    :meth:`Registrar.run` until stdin closes; every Salt event it fires is a line
    ``{"tag", "data", "at"}`` (``at``: the wall clock), and ``bench/stats`` lines carry the
    events read from Marathon's stream and the resyncs done, whenever they change; when stdin
    closes, a ``bench/threads`` line carries the CPU seconds of each thread (pool threads
    summed under their name's prefix).
``resync``
    One full resync per line read on stdin, answered by ``{"ok", "seconds", "cpu",
    "read_seconds", "requests": [[system, method, n]], "rss_mb", "peak_rss_mb", "errors"}``
    (``read_seconds``: of the resync's event, until Marathon and the registries were read;
    ``errors``: the first few the resync reported).
"""

import json
import sys
import threading
import time

import bench  # noqa: F401  (puts salt/_utils and salt/_engines on sys.path)
import httpclientutil
import marathon_registrar
import registrationutil

from bench.common import proc_stat, stat_cpu_seconds

STATS_INTERVAL = 0.05


def memory_mb():
    """(resident, peak resident) memory of this process, in MB."""
    status = dict(line.split(":", 1) for line in open("/proc/self/status", encoding="ascii"))
    return tuple(int(status[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))


class Output:
    """JSON lines on stdout, from any thread."""

    def __init__(self):
        self._lock = threading.Lock()

    def line(self, **fields):
        text = json.dumps(fields)
        with self._lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def thread_cpu():
    """``{thread name: CPU seconds}`` of this process's live threads; the threads of a pool
    (``<prefix>_<n>``) summed under the prefix."""
    found = {}
    for thread in threading.enumerate():
        try:
            _, fields = proc_stat(f"/proc/self/task/{thread.native_id}/stat")
        except OSError:  # ended meanwhile
            continue
        prefix, _, number = thread.name.rpartition("_")
        name = prefix if prefix and number.isdigit() else thread.name
        found[name] = found.get(name, 0.0) + stat_cpu_seconds(fields)
    return found


def run(registrar, output):
    thread = threading.Thread(target=registrar.run, name="registrar", daemon=True)
    thread.start()
    stopped = threading.Event()

    def report_stats():
        last = None
        while not stopped.wait(STATS_INTERVAL):
            stream = registrar.stream
            stats = {"events_received": stream.events_received if stream else 0,
                     "resyncs": registrar.resyncs}
            if stats != last:
                output.line(tag="bench/stats", data=stats, at=time.time())
                last = stats

    threading.Thread(target=report_stats, name="bench-stats", daemon=True).start()
    sys.stdin.read()  # until the benchmark closes it
    output.line(tag="bench/threads", data=thread_cpu(), at=time.time())
    stopped.set()
    registrar.stop()
    thread.join(30)


def resyncs(registrar, output, errors, summary):
    for _ in sys.stdin:
        errors.clear()
        httpclientutil.REQUEST_COUNTER.reset()
        started, cpu_started = time.perf_counter(), time.process_time()
        ok = registrar.resync()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rss, peak = memory_mb()
        counts = httpclientutil.REQUEST_COUNTER.snapshot()
        output.line(ok=ok, seconds=seconds, cpu=cpu, read_seconds=summary.get("read_seconds"),
                    rss_mb=rss, peak_rss_mb=peak,
                    requests=[[system, method, n] for (system, method), n in counts.items()],
                    errors=errors[:5])


def main(argv=None):
    config = json.loads((argv or sys.argv[1:])[0])
    settings = config["settings"]
    platform = registrationutil.configured(lambda key, default=None: settings.get(key, default),
                                           marathon_registrar.SOURCE)
    output = Output()
    errors = []  # what a resync reported as failed: the answer to each resync carries it
    summary = {}  # the last resync event's data

    def keep(data, tag):
        if tag.endswith("/error"):
            errors.append(data.get("error"))
        elif tag.endswith("/resync"):
            summary.update(data)

    fire = {
        "run": lambda data, tag: output.line(tag=tag, data=data, at=time.time()),
        "resync": keep,
    }[config["mode"]]
    registrar = marathon_registrar.Registrar(
        marathon_registrar.Settings(**config.get("options", {})), platform, fire)
    if config["mode"] == "run":
        run(registrar, output)
    else:
        resyncs(registrar, output, errors, summary)


if __name__ == "__main__":
    main()
