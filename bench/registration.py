"""Registration benchmark: ``python -m bench.registration [--services 200 --instances 3]``.

Starts the Consul, Kong and vulcand simulators (vulcand on a real etcd), each in a process of
its own, then runs through the registration core, exactly as the ``services`` state does
(read -> plan -> apply -> verify):

1. a first apply that registers every service with its instances;
2. a no-op re-apply, which must cost one listing per object type (vulcand's servers: one read
   of its etcd) and no write.

It prints the wall time and the HTTP requests per system of each run.
"""

import argparse
import contextlib
import time

import httpclientutil
import registrationutil

from bench.common import RegistryProcesses, request_summary


def desired_services(count, instances, domain):
    """``count`` services with ``instances`` instances each: service ports (vulcand listeners)
    in the platform's range from 10000, instances on loopback ports nothing listens on."""
    return {
        f"svc{index}": registrationutil.ServiceSpec(
            name=f"svc{index}", port=10000 + index, domain=domain,
            instances={f"svc{index}-{n}": ("127.0.0.1", 50000 + index * instances + n)
                       for n in range(instances)},
        )
        for index in range(count)
    }


def timed_converge(registries, owner, desired, max_workers):
    httpclientutil.REQUEST_COUNTER.reset()
    started = time.perf_counter()
    outcome = registrationutil.converge(registries, owner, desired, max_workers=max_workers)
    elapsed = time.perf_counter() - started
    if outcome.result is not True:
        raise SystemExit(f"converge failed: {outcome.comment()}")
    return elapsed, outcome, httpclientutil.REQUEST_COUNTER.snapshot()


def report(label, elapsed, outcome, counts):
    changes = len(outcome.applied.done) if outcome.applied else 0
    print(f"{label:<16} {elapsed:8.3f} s  changes {changes:5d}  {request_summary(counts)}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.registration", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--workers", type=int, default=registrationutil.DEFAULT_MAX_WORKERS)
    options = parser.parse_args(argv)

    domain = registrationutil.DEFAULT_DOMAIN
    owner = registrationutil.Owner(registrationutil.DEFAULT_CLUSTER, "pillar")
    with contextlib.ExitStack() as stack:
        urls = RegistryProcesses(stack).settings()
        registries = registrationutil.Registries.from_config(
            lambda key, default: urls.get(key, default))
        desired = desired_services(options.services, options.instances, domain)

        print(f"{options.services} services x {options.instances} instances, "
              f"{options.workers} workers")
        report("first apply", *timed_converge(registries, owner, desired, options.workers))
        report("no-op re-apply", *timed_converge(registries, owner, desired, options.workers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
