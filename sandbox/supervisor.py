"""One supervised process tree: every child is stopped on exit, error or Ctrl-C.

Each child runs in its own process group, so stopping it reaches everything it started (the
salt-master's workers, the etcd a vulcand simulator launches) and a Ctrl-C in the terminal goes
to the sandbox alone, which then stops its children in reverse start order. Children also get
``PR_SET_PDEATHSIG``, so they are told to stop even if the sandbox itself is killed.

Every process of a sandbox carries the environment variable :data:`MARKER_VARIABLE` with the
sandbox's run id; after stopping the groups, the supervisor sweeps ``/proc`` for processes still
carrying it (a daemon that escaped its group) and kills them, so nothing is left behind.
:func:`marked_processes` is the same check, for tests.
"""

import ctypes
import os
import pathlib
import signal
import subprocess
import time
import uuid

MARKER_VARIABLE = "SALT_SHOWCASE_SANDBOX_RUN"
STOP_GRACE_SECONDS = 10.0
KILL_WAIT_SECONDS = 5.0  # SIGKILL is not instant: how long to wait for the kernel to finish
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True)


class ChildFailed(RuntimeError):
    """A supervised process exited or did not get ready; ``output`` holds what it printed."""

    def __init__(self, message, output="", exited=False):
        super().__init__(message)
        self.output = output
        self.exited = exited


def _die_with_parent():
    # Runs in the forked child before exec: keep it to one libc call.
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def marked_processes(run_id):
    """Pids of the live processes whose environment carries this sandbox run id."""
    needle = f"{MARKER_VARIABLE}={run_id}".encode()
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone, or not ours to read
        if state != "Z" and needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _signal_group(pgid, signum):
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_until(done, seconds):
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


class Child:
    """A long-running supervised process; its output goes to ``log_path``."""

    def __init__(self, name, process, log_path):
        self.name = name
        self.process = process
        self.log_path = log_path

    @property
    def pid(self):
        return self.process.pid

    def running(self):
        return self.process.poll() is None

    def output(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_line(self, accept, timeout):
        """The first output line for which ``accept(line)`` is true, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output().splitlines():
                if accept(line):
                    return line
            self._check(deadline, "a usable line of output")
            time.sleep(0.1)

    def wait_until(self, ready, timeout, what):
        """Wait until ``ready()`` is true while the process lives."""
        deadline = time.monotonic() + timeout
        while not ready():
            self._check(deadline, what)
            time.sleep(0.1)

    def _check(self, deadline, what):
        if not self.running():
            raise ChildFailed(
                f"{self.name} exited with status {self.process.returncode}", self.output(), exited=True
            )
        if time.monotonic() > deadline:
            raise ChildFailed(f"{self.name}: {what} not reached in time", self.output())


class Supervisor:
    """Starts processes, runs commands, and stops them all (also as a context manager)."""

    def __init__(self, log_dir, env=None, stop_grace=STOP_GRACE_SECONDS):
        self.run_id = uuid.uuid4().hex
        self.stop_grace = stop_grace
        self.log_dir = pathlib.Path(log_dir)
        self.env = {**(os.environ if env is None else env), MARKER_VARIABLE: self.run_id}
        self._children = []  # Child, in start order
        self._commands = set()  # subprocess.Popen of one-shot commands running now

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop_all()

    def _spawn(self, argv, env, cwd, stdout, stderr=subprocess.STDOUT):
        return subprocess.Popen(
            [str(arg) for arg in argv],
            env={**self.env, **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def start(self, name, argv, env=None, cwd=None):
        """Start a long-running process; its output goes to ``<log_dir>/<name>.log``."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = self._spawn(argv, env, cwd, log)
        child = Child(name, process, log_path)
        self._children.append(child)
        return child

    def stop(self, child):
        """Stop one child (its whole process group) and forget it."""
        self._stop_groups([child.process])
        self._children.remove(child)

    def run(self, argv, env=None, cwd=None, timeout=None, stderr_after=False):
        """Run a command to completion: ``(returncode, combined output)``; with
        ``stderr_after``, its standard error follows its standard output instead of being
        interleaved with it (a warning Salt prints while its JSON is written would cut the
        JSON apart).

        The command is stopped with its whole group on timeout or interruption.
        """
        process = self._spawn(argv, env, cwd, subprocess.PIPE,
                              subprocess.PIPE if stderr_after else subprocess.STDOUT)
        self._commands.add(process)
        try:
            output, errors = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._stop_groups([process])
            output, errors = process.communicate()
            raise ChildFailed(
                f"{argv[0]} did not finish within {timeout:.0f} s\n{_text(output, errors)}"
            ) from None
        finally:
            if process.poll() is None:
                self._stop_groups([process])
            self._commands.discard(process)
        return process.returncode, _text(output, errors)

    def stop_all(self):
        """Stop running commands, then every child in reverse start order; sweep leftovers."""
        self._stop_groups(list(self._commands))
        self._commands.clear()
        while self._children:
            self.stop(self._children[-1])
        for pid in marked_processes(self.run_id):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _wait_until(lambda: not marked_processes(self.run_id), KILL_WAIT_SECONDS)

    def _stop_groups(self, processes):
        """SIGTERM each process group, wait for the grace period, then SIGKILL what is left."""
        groups = [process.pid for process in processes]  # each child leads its own group
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        # The leader may be gone while its workers still wind down: give them the same grace.
        _wait_until(
            lambda: not any(_group_alive(pgid) for pgid in groups), deadline - time.monotonic()
        )
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        for process in processes:
            process.wait()
        _wait_until(lambda: not any(_group_alive(pgid) for pgid in groups), KILL_WAIT_SECONDS)


def _text(output, errors):
    return (output + (errors or b"")).decode(errors="replace")
