"""End to end: ``./run sandbox`` runs the whole platform workflow and leaves nothing behind.

The sandbox runs as a user runs it (``python -m sandbox`` from the repository root) with its
temporary directory inside the test's, so the test can tell that every file is gone and, since
every process the sandbox starts inherits that ``TMPDIR``, that every process is gone too.
"""

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.slow

FULL_RUN_TIMEOUT = 900
STEP_LINE = re.compile(r"^==> +(\d+)\. (.*)$", re.MULTILINE)


def processes_with_environment(variable, value):
    """Pids of live processes whose environment has ``variable=value``."""
    needle = f"{variable}={value}".encode()
    pids = []
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ:
            pids.append(int(entry.name))
    return pids


@pytest.fixture
def sandbox_tmp():
    """The sandbox's TMPDIR; afterwards nothing may run from it or be left in it.

    A short path under the system temp dir, not pytest's deep tmp_path: Salt's Unix sockets
    live below it, and socket paths cannot exceed 107 bytes."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="sbx-"))
    yield directory
    leftovers = processes_with_environment("TMPDIR", str(directory))
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(directory, ignore_errors=True)
    assert not leftovers, f"processes left behind by the sandbox: {leftovers}"


def start_sandbox(repo_root, sandbox_tmp, output, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args],
        cwd=repo_root,
        env={**os.environ, "TMPDIR": str(sandbox_tmp), **(env or {})},
        stdout=output,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def assert_steps(text, expected):
    """Each of the ``expected`` step titles was run (the sandbox's numbered step lines)."""
    steps = [title for _, title in STEP_LINE.findall(text)]
    missing = [title for title in expected if title not in steps]
    assert not missing, f"steps not run: {missing}\n{text}"


def test_the_first_command_runs_the_whole_workflow(repo_root, sandbox_tmp, tmp_path):
    log = tmp_path / "sandbox.out"
    with open(log, "wb") as output:
        # The loopback workflow (where real hosts can run, tests/realhosts runs that one).
        process = start_sandbox(repo_root, sandbox_tmp, output, "--loopback")
        returncode = process.wait(timeout=FULL_RUN_TIMEOUT)
    text = log.read_text()

    assert returncode == 0, text
    assert_steps(text, (
        "Create the AWS network",
        "Create the instances of the default map",
        "Render the highstate of every node",
        "Register the Mesos and Marathon UIs in the gateway",
        "Register web and its instances",
        "Check web.service.consul through the gateway (3 instances)",
        "Check web.service.consul through the gateway (scaled to 2)",
        "Check hello.service.consul through the gateway (registered by the Marathon engine)",
        "Destroy the instances",
        "Tear the AWS network down",
        "Check the AWS account is empty",
    ))
    # Every command is printed before it runs, as the operator types it.
    assert "$ salt kong state.apply services pillar='{\"service\": \"web\"}'" in text
    assert "$ salt-run state.orchestrate orch.network\n" in text
    # The answering set follows the scaling: three web instances, then two of them.
    before, after = re.split(r"^==> +\d+\. Scale /web to 2 instances$", text, flags=re.MULTILINE)
    answered_before = set(re.findall(r"answered: (web\.\S+)", before))
    answered_after = set(re.findall(r"answered: (web\.\S+)", after))
    assert len(answered_before) == 3 and len(answered_after) == 2, text
    assert answered_after < answered_before
    assert "Routing (service -> gateway host -> router listener -> instances):" in text
    assert not list(sandbox_tmp.iterdir()), "the sandbox left files behind"


def test_ctrl_c_stops_every_process_and_removes_the_directory(repo_root, sandbox_tmp, tmp_path):
    log = tmp_path / "sandbox.out"
    with open(log, "wb") as output:
        process = start_sandbox(repo_root, sandbox_tmp, output, "--loopback")
        # Interrupt while the Salt daemons start: the most processes, mid-step.
        deadline = time.monotonic() + 120
        while "salt-master" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        time.sleep(2)
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=120)

    text = log.read_text()
    assert returncode == 130, text
    assert "Interrupted: stopping every process of the sandbox" in text
    assert not list(sandbox_tmp.iterdir()), "the sandbox left files behind"


# -- the supervisor alone: children that resist stopping ---------------------------------------

IGNORE_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
GRANDCHILD = (
    IGNORE_SIGTERM
    + "import subprocess, sys; subprocess.Popen([sys.executable, '-c', {code!r}]); time.sleep(600)"
)
ESCAPING_DAEMON = (
    "import os, subprocess, sys, time; "
    "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'], start_new_session=True); "
    "time.sleep(600)"
)


@pytest.fixture
def supervisor(tmp_path):
    from sandbox.supervisor import Supervisor

    with Supervisor(tmp_path, stop_grace=1.0) as supervisor:
        yield supervisor
    assert_nothing_left(supervisor)


def assert_nothing_left(supervisor):
    from sandbox.supervisor import marked_processes

    left = marked_processes(supervisor.run_id)
    assert not left, f"processes left: {left}"


def wait_for_marked(supervisor, count):
    from sandbox.supervisor import marked_processes

    deadline = time.monotonic() + 30
    while len(marked_processes(supervisor.run_id)) < count:
        assert time.monotonic() < deadline, "the test processes did not start"
        time.sleep(0.1)


def test_stop_all_kills_a_child_and_its_children_that_ignore_sigterm(supervisor):
    code = GRANDCHILD.format(code=IGNORE_SIGTERM + "time.sleep(600)")
    supervisor.start("stubborn", [sys.executable, "-c", code])
    wait_for_marked(supervisor, 2)
    supervisor.stop_all()
    assert_nothing_left(supervisor)


def test_stop_all_sweeps_a_process_that_left_its_group(supervisor):
    supervisor.start("daemon", [sys.executable, "-c", ESCAPING_DAEMON])
    wait_for_marked(supervisor, 2)
    supervisor.stop_all()
    assert_nothing_left(supervisor)


def test_a_commands_standard_error_can_follow_its_output_instead_of_cutting_it(supervisor):
    # A JSON document written in pieces, and a warning on stderr between them (as Salt's).
    code = ("import sys\n"
            "sys.stdout.write('{\"a\": '); sys.stdout.flush()\n"
            "sys.stderr.write('unclosed MasterMinion\\n'); sys.stderr.flush()\n"
            "sys.stdout.write('1}\\n')")
    assert supervisor.run([sys.executable, "-c", code]) == (0, '{"a": unclosed MasterMinion\n1}\n')
    assert supervisor.run([sys.executable, "-c", code], stderr_after=True) == (0, '{"a": 1}\nunclosed MasterMinion\n')


def test_a_command_that_times_out_is_stopped_with_its_children(supervisor):
    from sandbox.supervisor import ChildFailed

    code = GRANDCHILD.format(code="import time; time.sleep(600)")
    with pytest.raises(ChildFailed, match="did not finish within 2 s"):
        supervisor.run([sys.executable, "-c", code], timeout=2)
    assert_nothing_left(supervisor)
