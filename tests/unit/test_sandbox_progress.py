"""What the real-host sandbox says of orch.cluster's state runs, from the salt-master's job
events (``salt-run state.event 'salt/job/*'``): each host's run when it returns, and which hosts
are still running theirs."""

from sandbox.realhosts import StateRuns

JID = "20261202052120262443"
STATES = {
    "pkg_|-a_|-a_|-installed": {"__id__": "a", "result": True, "changes": {"new": 1}, "duration": 1500.0},
    "file_|-b_|-b_|-managed": {"__id__": "b", "result": False, "changes": {}, "duration": 500.0},
}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def new_job(jid, minions, fun="state.highstate"):
    return f"salt/job/{jid}/new", {"jid": jid, "fun": fun, "minions": minions, "tgt": "roles:slave"}


def job_return(jid, minion, states=STATES, fun="state.highstate"):
    return f"salt/job/{jid}/ret/{minion}", {"cmd": "_return", "id": minion, "fun": fun, "return": states, "jid": jid}


def test_each_return_is_said_with_its_counts_and_the_rest_are_named_as_still_running():
    clock = Clock()
    runs = StateRuns(clock)
    assert runs.event(*new_job(JID, ["slave0", "slave1", "slave2"])) is None
    assert runs.event(*new_job(JID[:-1] + "9", ["kong"])) is None
    clock.now += 30
    assert runs.waiting() == ("still running state.highstate on slave0, slave1, slave2 (for 30 s); "
                              "still running state.highstate on kong (for 30 s)")
    assert runs.event(*job_return(JID, "slave1")) == "slave1: state.highstate 2 states, 1 changed, 1 failed (2 s)"
    clock.now += 15
    assert runs.waiting() == ("still running state.highstate on slave0, slave2 (for 45 s); "
                              "still running state.highstate on kong (for 45 s)")
    runs.event(*job_return(JID, "slave0"))
    runs.event(*job_return(JID, "slave2"))
    runs.event(*job_return(JID[:-1] + "9", "kong"))
    assert runs.waiting() is None and runs.running == {}


def test_a_run_that_did_not_render_is_said_and_over():
    runs = StateRuns(Clock())
    runs.event(*new_job(JID, ["kong"]))
    errors = ["Rendering SLS 'base:kong' failed: pillar key `kong:databse` is unknown"]
    assert runs.event(*job_return(JID, "kong", states=errors)) == "kong: state.highstate did not run (1 errors)"
    assert runs.waiting() is None


def test_other_jobs_and_events_say_nothing():
    runs = StateRuns(Clock())
    find_job = f"salt/job/{JID}/ret/kong", {"id": "kong", "fun": "saltutil.find_job", "return": {"fun": "state.highstate"}}
    runs.event(*new_job(JID, ["kong"]))
    for tag, event in (new_job(JID[:-1] + "9", ["kong"], fun="mine.update"), find_job,
                       (f"salt/job/{JID}/prog/kong/1", {"data": {"ret": {}, "len": 3}})):
        assert runs.event(tag, event) is None
    assert runs.waiting() == "still running state.highstate on kong (for 0 s)"
