"""snmpsim variation module `keyline_counter`: counters computed from the wall clock.

snmpsim loads every `*.py` file of its `--variation-modules-dir` folders by executing it (it
is not imported as a package module) and calls `init`, `variate` for each request that hits
a record tagged `TAG:keyline_counter`, and `shutdown`. The record's value holds the counter's
parameters (see lab.sim.traffic.CounterSpec); the answer is the counter at the time of the
request. Nothing is cached, so rewriting the record (a port going down freezes its counters)
takes effect on the next request.

This folder must contain only variation modules: snmpsim would execute any other .py file.
"""

import time

from lab.sim.traffic import CounterSpec


def init(**context):
    """Nothing to set up: every answer is computed from the record alone."""


def variate(oid, tag, value, **context):
    # snmpsim hands us the nearest record; an exact GET on another OID is "no such instance",
    # and a SET is refused: the simulated counters are read-only.
    if context["setFlag"] or (not context["nextFlag"] and not context["exactMatch"]):
        return context["origOid"], tag, context["errorStatus"]
    return oid, tag, CounterSpec.decode(value).value(time.time())


def shutdown(**context):
    """Nothing to release."""
