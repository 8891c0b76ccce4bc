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


def _print_keep_help(runner, stack):
    salt = stack.salt
    exports = {**stack.env, "MARATHON": stack.urls.get("marathon", {}).get("url", "")}
    runner.print("\nThe sandbox keeps running. In another shell, from the repository root:")
    for name, value in exports.items():
        runner.print(f"  export {name}={value}")
    runner.print(f"  . .venv/bin/activate; C='-c {salt.config_dir}'")
    runner.print("  salt $C kong test.ping")
    runner.print("  salt $C kong pillar.get platform unmask=True")
    runner.print("  salt-run $C state.event pretty=True      # follow the Marathon engine")
    runner.print("  salt-cloud $C -Q")
    proxy = stack.urls.get("kong", {}).get("proxy_url", "<kong proxy>")
    runner.print(f"  curl -H 'Host: web.service.consul' {proxy}/")
    runner.print(f"Logs: {stack.supervisor.log_dir}\nPress Ctrl-C to stop it.")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="./run sandbox", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--keep",
        action="store_true",
        help="skip the teardown and keep the sandbox running until Ctrl-C, to try commands on it",
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
            workflow = Workflow(stack, runner)
            try:
                workflow.run(keep=options.keep)
                if options.keep:
                    runner.print(summary.render(workflow.created, workflow.routing, runner.results))
                    summary_shown = True
                    _print_keep_help(runner, stack)
                    while True:
                        time.sleep(3600)
            except (StepFailed, ChildFailed) as failure:
                runner.print(f"\nStopped: {failure}")
                status = EXIT_FAILED
            with runner.step("Stop the sandbox (every process it started)"):
                supervisor.stop_all()
    except KeyboardInterrupt:
        runner.print("\nInterrupted: stopping every process of the sandbox")
        status = EXIT_INTERRUPTED
    finally:
        if options.keep:
            runner.print(f"Kept {workdir} (configuration and logs); remove it with: rm -r {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if workflow is not None and not summary_shown:
        runner.print(summary.render(workflow.created, workflow.routing, runner.results))
    if status == 0 and runner.unavailable:
        runner.print("\nIncomplete: parts of the platform are not available yet in this checkout:")
        for result in runner.unavailable:
            runner.print(f"  step {result.number} ({result.title}): {result.detail}")
        status = EXIT_INCOMPLETE
    return status


if __name__ == "__main__":
    sys.exit(main())
