"""`race` itself: a racer that skips the start line or a race that never meets is an error."""

from __future__ import annotations

from tests.support.queries import race


def test_racers_that_start_and_meet_report_nothing(app):
    def body(n, line):
        line.wait()
        line.overlap()

    assert race(app, body) == []


def test_a_racer_that_skips_the_start_line_is_reported(app):
    def body(n, line):
        if n == 1:
            line.wait(timeout=1)

    errors = race(app, body, timeout=1)
    assert any("never started" in str(e) for e in errors), errors


def test_a_race_without_a_meeting_point_is_reported(app):
    def body(n, line):
        line.wait()

    errors = race(app, body)
    assert [str(e) for e in errors] == ["no racer held its place while the others ran"]
