"""The purposes member data is used for: one necessary, the others off until the member
says yes (privacy policy; PIPL arts. 14-16)."""

from __future__ import annotations

from dataclasses import dataclass

from .text import _l


@dataclass(frozen=True)
class Purpose:
    key: str
    title: object
    description: object
    optional: bool
    kantara_category: str


SERVICE = "service"
TREND_ANALYSIS = "trend_analysis"
ADVERTISING = "advertising"

PURPOSES: dict[str, Purpose] = {
    SERVICE: Purpose(
        SERVICE,
        _l("Providing the service"),
        _l(
            "Running your membership: signing you in, answering your requests, sending the "
            "notices the law requires and keeping member statistics needed to provide the "
            "services you apply for. This is necessary, so it cannot be switched off."
        ),
        optional=False,
        kantara_category="Core Function",
    ),
    TREND_ANALYSIS: Purpose(
        TREND_ANALYSIS,
        _l("Trend analysis"),
        _l(
            "Using your information for general trend analysis to improve our service, such "
            "as evaluating service facilities and customer preferences. It looks at members "
            "in aggregate: no decision about you as an individual is made from it. Off unless "
            "you turn it on; the service is the same either way."
        ),
        optional=True,
        kantara_category="Improve Performance",
    ),
    ADVERTISING: Purpose(
        ADVERTISING,
        _l("Advertising planning"),
        _l(
            "Using your information to plan our advertising, for example deciding which "
            "offers to show members like you. Off unless you turn it on; the service is the "
            "same either way."
        ),
        optional=True,
        kantara_category="Marketing",
    ),
}

OPTIONAL_PURPOSES: tuple[str, ...] = tuple(k for k, p in PURPOSES.items() if p.optional)

# Shown beside every optional purpose's switch (GDPR art. 7(3): the member is told before
# consenting that consent can be withdrawn, and that withdrawal does not undo past use).
WITHDRAWAL_NOTE = _l(
    "You can withdraw this consent at any time, as easily as you gave it. Withdrawing stops "
    "this use from then on; it does not affect use already made while it was on."
)

