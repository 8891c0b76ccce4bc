"""
The shape shared by the per-object API states (``kong``, ``consul``, ``vulcand``): read the
current object, refuse one that is not ours, diff only the fields the state manages, honour test
mode, write, re-read, and report ``changes`` as old/new.

A state function describes its object as a :class:`Target` and hands it to :func:`present` or
:func:`absent`, which return the Salt state ``ret``:

- ``result``: True when in the correct state or written and verified, None in test mode when
  something would change, False on any error (with ``changes`` empty and the error as comment).
- ``changes``: ``{field: {"old", "new"}}`` for an update (nested mappings narrowed to the keys
  that differ), ``{"old": None, "new": {...}}`` for a creation, ``{"old": {...}, "new": None}``
  for a deletion. Test mode predicts exactly what a real run then reports, because a real run
  reports the re-read object narrowed to the managed fields.

Fields the state does not manage (server-filled defaults included) never show as drift: only
the keys of ``Target.wanted`` are compared, recursively in nested mappings.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from httpclientutil import NotFoundError
from salt.exceptions import CommandExecutionError, SaltInvocationError


@dataclass
class Target:
    """One API object as a state sees it.

    ``read()`` returns the object (None, or :class:`httpclientutil.NotFoundError`, when it does
    not exist). ``foreign(current)`` returns why the object is not ours to write or delete, as
    the end of a sentence starting with ``what`` ("exists and is ..."), or None when it is ours
    (``current`` is None when it does not exist yet). ``wanted`` holds the
    managed fields, compared with what ``read()`` returns; ``write(current)`` makes the object
    carry them; ``delete(current)`` removes it.
    """

    what: str
    read: Callable[[], Optional[dict]]
    foreign: Callable[[Optional[dict]], Optional[str]]
    wanted: Optional[dict] = None
    write: Callable[[Optional[dict]], None] = None
    delete: Callable[[dict], None] = None

    def current(self):
        try:
            return self.read()
        except NotFoundError:
            return None

    def refuse_foreign(self, current, action):
        """Raise when the object is not ours: ``action`` is what the state would do to it."""
        reason = self.foreign(current)
        if reason is not None:
            raise CommandExecutionError(f"{self.what} {reason}: refusing to {action}")


def selected(current, wanted):
    """``current`` narrowed to the keys of ``wanted``, recursively in nested mappings; a key
    ``current`` lacks reads as None."""
    return _walk(current, wanted, overlay=False)


def differences(current, wanted):
    """``{key: {"old", "new"}}`` for the keys of ``wanted`` whose value in ``current`` differs;
    nested mappings are compared, and reported, on the keys that differ only."""
    changes = {}
    for key, value in wanted.items():
        old = (current or {}).get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            nested = differences(old, value)
            if nested:
                changes[key] = {
                    "old": {name: change["old"] for name, change in nested.items()},
                    "new": {name: change["new"] for name, change in nested.items()},
                }
        elif old != value:
            changes[key] = {"old": old, "new": value}
    return changes


def merged(current, wanted):
    """``current`` with ``wanted`` written over it, recursively in nested mappings: the body
    that changes the managed fields of an object and keeps the others."""
    return _walk(current, wanted, overlay=True)


def _walk(current, wanted, overlay):
    """The keys of ``wanted`` (followed into mappings ``current`` holds too) with the values of
    ``wanted`` over the whole of ``current`` when ``overlay``, else with those of ``current``."""
    current = current or {}
    result = dict(current) if overlay else {}
    for key, value in wanted.items():
        old = current.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            result[key] = _walk(old, value, overlay)
        else:
            result[key] = value if overlay else old
    return result


def _changes(current, wanted):
    if current is None:
        return {"old": None, "new": wanted}
    return differences(current, wanted)


def _state(name, run):
    """The state ``ret`` of ``run()`` (which returns result, changes and comment)."""
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        ret.update(run())
    except (CommandExecutionError, SaltInvocationError) as err:
        ret.update(result=False, changes={}, comment=str(err))
    return ret


def present(name, target_of, test):
    """The state ``ret`` of making the object ``target_of()`` describes carry its ``wanted``
    fields (``target_of`` runs inside the error handling, so it may validate and configure)."""

    def run():
        target = target_of()
        current = target.current()
        target.refuse_foreign(current, "create it" if current is None else "take it over")
        predicted = _changes(current, target.wanted)
        if not predicted:
            return {"comment": f"{target.what} is in the correct state"}
        verb = "created" if current is None else "updated"
        if test:
            return {"result": None, "changes": predicted,
                    "comment": f"{target.what} would be {verb}"}
        target.write(current)
        after = target.current()
        if after is None:
            raise CommandExecutionError(f"{target.what} was written but cannot be read back")
        reported = _changes(current, selected(after, target.wanted))
        remaining = differences(after, target.wanted)
        if remaining:
            return {"result": False, "changes": reported,
                    "comment": f"{target.what} was {verb} but still differs in "
                               f"{', '.join(sorted(remaining))}"}
        return {"changes": reported, "comment": f"{target.what} has been {verb}"}

    return _state(name, run)


def absent(name, target_of, test):
    """The state ``ret`` of deleting the object ``target_of()`` describes, if it exists."""

    def run():
        target = target_of()
        current = target.current()
        if current is None:
            return {"comment": f"{target.what} is already absent"}
        target.refuse_foreign(current, "delete it")
        changes = {"old": current, "new": None}
        if test:
            return {"result": None, "changes": changes,
                    "comment": f"{target.what} would be deleted"}
        target.delete(current)
        if target.current() is not None:
            raise CommandExecutionError(f"{target.what} was deleted but still exists")
        return {"changes": changes, "comment": f"{target.what} has been deleted"}

    return _state(name, run)
