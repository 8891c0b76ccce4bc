"""Numbered, timed steps: each printed before it runs, failing fast with its output.

A step is a ``with`` block::

    with runner.step("Create the network", "salt-run state.orchestrate orch.network"):
        ...

It prints its title and the command an operator would type, then ``ok``/``FAILED`` with its
duration. :class:`StepUnavailable` raised inside marks the step "not available yet" (a part of
the platform that does not exist in this checkout) and the run goes on; any other error stops
the run with :class:`StepFailed`, which carries the failing step's output.
"""

import contextlib
import sys
import time
from dataclasses import dataclass

OK, FAILED, UNAVAILABLE = "ok", "FAILED", "not available yet"
OUTPUT_TAIL_LINES = 40
OUTPUT_LINE_CHARS = 300


class StepUnavailable(Exception):
    """The step cannot run because a part it drives is missing; the message says which."""


class StepFailed(Exception):
    """A step failed; ``output`` holds what its command printed."""

    def __init__(self, message, output=""):
        super().__init__(message)
        self.output = output


@dataclass
class StepResult:
    number: int
    title: str
    command: str
    status: str
    seconds: float
    detail: str = ""


def _clip(line):
    if len(line) <= OUTPUT_LINE_CHARS:
        return line
    return f"{line[:OUTPUT_LINE_CHARS]}... ({len(line) - OUTPUT_LINE_CHARS} more characters)"


def tail(text, lines=OUTPUT_TAIL_LINES):
    """The last ``lines`` lines of ``text`` (each clipped), saying how many were left out."""
    all_lines = [_clip(line) for line in text.rstrip().splitlines()]
    if len(all_lines) <= lines:
        return "\n".join(all_lines)
    return "\n".join([f"... ({len(all_lines) - lines} lines above left out)", *all_lines[-lines:]])


def _indent(text, prefix="    | "):
    return "\n".join(prefix + line for line in text.splitlines())


class StepRunner:
    """Runs and records steps, printing progress to ``out``."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.results = []

    def print(self, text=""):
        print(text, file=self.out, flush=True)

    @property
    def unavailable(self):
        return [result for result in self.results if result.status == UNAVAILABLE]

    def succeeded(self, title):
        """True when the step called ``title`` ran and passed."""
        return any(r.title == title and r.status == OK for r in self.results)

    @contextlib.contextmanager
    def step(self, title, command=""):
        number = len(self.results) + 1
        self.print(f"==> {number:2d}. {title}")
        for line in command.splitlines():
            self.print(f"    $ {line}")
        started = time.monotonic()

        def record(status, detail=""):
            seconds = time.monotonic() - started
            self.results.append(StepResult(number, title, command, status, seconds, detail))
            self.print(f"    {status} ({seconds:.1f} s){': ' + detail if detail else ''}")

        try:
            yield
        except StepUnavailable as missing:
            record(UNAVAILABLE, str(missing))
        except StepFailed as failure:
            record(FAILED, str(failure))
            if failure.output:
                self.print(_indent(tail(failure.output)))
            raise
        except Exception as error:
            record(FAILED, f"{type(error).__name__}: {error}")
            output = getattr(error, "output", "")  # what a failed child process printed
            if output:
                self.print(_indent(tail(output)))
            raise StepFailed(f"step {number} ({title}) failed: {error}", output) from error
        else:
            record(OK)
