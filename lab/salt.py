"""Reading ``state.apply`` results as an operator reads them: per host, the states that failed
(with their id and message) and the states that changed something."""

import json


def results(stdout):
    """{host: {state key: result}} of ``salt --out=json --static ... state.apply``; a host whose
    states did not even render has a list of messages instead."""
    return json.loads(stdout or "{}")


def failures(by_host):
    """One line per failed state: ``host: state id (function): message``."""
    lines = []
    for host, states in sorted(by_host.items()):
        if not isinstance(states, dict):
            lines.append(f"{host}: did not render: {' '.join(map(str, states))}")
            continue
        for key, state in sorted(states.items(), key=lambda item: item[1].get("__run_num__", 0)):
            if state.get("result") is False:
                function = "{0}.{3}".format(*key.split("_|-"))
                lines.append(f"{host}: {state.get('__id__', key)} ({function}): {state.get('comment', '').strip()}")
    return lines


def changed(by_host):
    """One line per state that changed something: ``host: state id``."""
    return [
        f"{host}: {state.get('__id__', key)}"
        for host, states in sorted(by_host.items()) if isinstance(states, dict)
        for key, state in states.items() if state.get("changes")
    ]
