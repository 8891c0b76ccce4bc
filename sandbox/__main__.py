"""``./run sandbox [--keep]``: the whole platform workflow on a local sandbox.

Exit status: 0 when every step passed, 1 when a step failed, 2 when some parts of the platform
are not available yet in this checkout (those steps are listed), 130 when interrupted.
"""

import argparse
import pathlib
import shutil
import signal
import sys
import tempfile
import time

from sandbox import summary
from sandbox.stack import Stack
from sandbox.steps import StepFailed, StepRunner
from sandbox.supervisor import ChildFailed, Supervisor
from sandbox.workflow import Workflow

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
EXIT_FAILED, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 1, 2, 130


def _interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _workflow(options, runner):
    """The real-host workflow where real hosts can run, else (saying why) the loopback one."""
    if options.loopback:
        return Workflow
    from sandbox import realhosts  # names the lab (SHOWCASE_LAB_NAME) before lab/ reads it

    reason = realhosts.unavailable()
    if reason:
        runner.print(f"Real hosts cannot run here ({reason}): the loopback workflow instead")
        return Workflow
    return realhosts.RealHostsWorkflow


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run sandbox", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep",
        action="store_true",
        help="skip the teardown and keep the sandbox running until Ctrl-C, to try commands on it",
    )
    parser.add_argument(
        "--loopback",
        action="store_true",
        help="the registries as simulators on 127.0.0.1 and salt-cloud with --no-deploy, even "
        "where real hosts can run",
    )
    options = parser.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="sandbox-"))
    (workdir / "logs").mkdir()
    runner = StepRunner()
    runner.print(f"Sandbox in {workdir} (removed at the end{'' if not options.keep else ' unless --keep'})")
    status = 0
    workflow = None
    summary_shown = False
    try:
        with Supervisor(workdir / "logs") as supervisor:
            stack = Stack(supervisor, REPO_ROOT, workdir)
            workflow = _workflow(options, runner)(stack, runner)
            try:
                workflow.run(keep=options.keep)
                if options.keep:
                    runner.print(summary.render(workflow.created, workflow.routing, runner.results,
                                                workflow.host_report))
                    summary_shown = True
                    runner.print("\n".join(workflow.keep_help()))
                    while True:
                        time.sleep(3600)
            except (StepFailed, ChildFailed) as failure:
                runner.print(f"\nStopped: {failure}")
                status = EXIT_FAILED
            with runner.step("Stop the sandbox (every process it started)"):
                workflow.close()
                supervisor.stop_all()
    except KeyboardInterrupt:
        runner.print("\nInterrupted: stopping every process of the sandbox")
        status = EXIT_INTERRUPTED
        if workflow is not None:
            workflow.close()
    finally:
        if options.keep:
            runner.print(f"Kept {workdir} (configuration and logs); remove it with: rm -r {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if workflow is not None and not summary_shown:
        runner.print(summary.render(workflow.created, workflow.routing, runner.results, workflow.host_report))
    if status == 0 and runner.unavailable:
        runner.print("\nIncomplete: parts of the platform are not available yet in this checkout:")
        for result in runner.unavailable:
            runner.print(f"  step {result.number} ({result.title}): {result.detail}")
        status = EXIT_INCOMPLETE
    return status


if __name__ == "__main__":
    sys.exit(main())
