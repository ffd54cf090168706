"""The soak-and-chaos run: `make soak` (docs/soak.md).

The production stack on this machine (two gunicorn app instances, two notify workers,
PostgreSQL, a Redis of its own, a local SMTP server, the Twilio stand-in and a webhook
receiver) under mixed Locust traffic while faults are injected on a schedule; at the end every
invariant the product promises is checked and each figure printed on one line.

Modules: `harness` (processes and the run), `seed` (database and bulk members), `sinks` (the
receivers, in a process of their own), `load` and `locustfile` (Locust, in a process of its
own), `faults` (the schedule), `checks` (figures and invariants).
"""
