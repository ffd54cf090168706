"""Which of a member's contacts a message may go to: one rule for every code and notice.

The rule, for every message to a member:
- an email goes to the address held; a code or a security warning (`Reach.proof`) only to
  an address the member proved with a code;
- a text message goes only to a number the member proved, and never after they opted out
  of texts (STOP, or the switch on their page);
- a notice the member may turn off (`chosen_email`, `chosen_sms`) goes only by the channels
  they chose for notices (`notify_email`, `notify_sms`);
- email comes first: a message that needs one channel takes the first one found.

`contacts` applies it to one member, `contact_condition` is the same rule in SQL for a
fan-out, so a single message and a bulk send cannot disagree (a test compares them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domain import Channel
from ..models import Member


@dataclass(frozen=True)
class Reach:
    """What a kind of message asks of the contacts it goes to."""

    # Only contacts the member proved with a code.
    proof: bool = False
    # Every channel the rule allows, not only the first (email first).
    every: bool = False
    # Email only while the member wants notices by email; text only while by text.
    chosen_email: bool = False
    chosen_sms: bool = False


# Codes and security warnings (a code, too many wrong codes): a proven contact; callers take
# the first, or the one being changed (services/auth.py `proof_contact`).
CODE = Reach(proof=True, every=True)
# A message about the member's own account (a guardian's answer, a ward's change): one
# channel, email first.
ACCOUNT = Reach()
# The answer to a deletion request: email, and a text too when the member chose texts.
DECISION = Reach(every=True, chosen_sms=True)
# A policy change notice: by each channel the member chose.
POLICY_NOTICE = Reach(every=True, chosen_email=True, chosen_sms=True)
# A notice the law requires (a security incident): email even to those who turned policy
# emails off; texts still only by choice.
ESSENTIAL_NOTICE = Reach(every=True, chosen_sms=True)


def may_text(member: Member | None) -> bool:
    """Whether any text may go to the member's numbers (new or old): not after an opt-out."""
    return member is None or member.sms_opted_out_at is None


def contacts(member: Member, reach: Reach) -> dict[str, str]:
    """The member's contacts a message of this `reach` goes to: channel -> address, email
    first (empty when none may be used)."""
    found = {}
    if (
        member.email
        and (member.email_verified_at is not None or not reach.proof)
        and (member.notify_email or not reach.chosen_email)
    ):
        found[Channel.EMAIL] = member.email
    if (
        member.phone
        and member.phone_verified_at is not None
        and may_text(member)
        and (member.notify_sms or not reach.chosen_sms)
    ):
        found[Channel.SMS] = member.phone
    if reach.every:
        return found
    return dict(list(found.items())[:1])


def first_contact(member: Member, reach: Reach) -> tuple[str, str] | None:
    """The (channel, address) a one-channel message goes to, or None."""
    return next(iter(contacts(member, reach).items()), None)


def contact_condition(channel: str, reach: Reach):
    """SQL over `Member`: whose contact on `channel` a message of this `reach` may use (the
    rule of `contacts`, for a fan-out; `reach.every` is implied)."""
    if channel == Channel.EMAIL:
        condition = Member.email.is_not(None)
        if reach.proof:
            condition = condition & Member.email_verified_at.is_not(None)
        if reach.chosen_email:
            condition = condition & Member.notify_email.is_(True)
        return condition
    condition = (
        Member.phone.is_not(None)
        & Member.phone_verified_at.is_not(None)
        & Member.sms_opted_out_at.is_(None)
    )
    if reach.chosen_sms:
        condition = condition & Member.notify_sms.is_(True)
    return condition
