"""The contact form: a message to customer service, and an acknowledgement to the sender."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from flask_babel import lazy_gettext as _l

from ..domain import Channel
from ..models import Member
from .audit import record_audit
from .errors import Invalid
from .notifications import contact_subject, enqueue_notification, member_subject
from .validation import normalize_email, secret_text_problem

CATEGORIES = {
    "question": _l("A question about privacy or this policy"),
    "privacy_request": _l("A request about my personal information"),
    "phishing": _l("Report a suspected phishing website or payment risk"),
}


@dataclass
class ContactMessage:
    category: str
    name: str
    email: str
    message: str
    submission_id: str  # from the form: a resubmitted form sends nothing twice


def submit_contact(data: ContactMessage, member: Member | None, locale: str) -> None:
    """Queue the message to customer service and the acknowledgement to the sender.

    :raises Invalid: with field errors; nothing is queued then.
    """
    errors: dict[str, list] = {}
    if data.category not in CATEGORIES:
        errors["category"] = [_l("Choose one of the options.")]
    name = " ".join((data.name or "").split())
    if not name:
        errors["name"] = [_l("Tell us your name.")]
    email = normalize_email(data.email or "")
    if email is None:
        errors["email"] = [_l("Enter a valid email address.")]
    text = (data.message or "").strip()
    if len(text) < 10:
        errors["message"] = [_l("Tell us a little more (at least 10 characters).")]
    elif len(text) > 5000:
        errors["message"] = [_l("Use at most 5000 characters.")]
    for field, value in (("name", name), ("message", text)):
        if problem := secret_text_problem(value):
            errors.setdefault(field, []).append(problem)
    if not data.submission_id or len(data.submission_id) > 64:
        errors["message"] = [_l("This form has expired. Please reload the page and try again.")]
    if errors:
        raise Invalid(_l("Please correct the highlighted fields."), errors)
    context = {
        "category_label": CATEGORIES[data.category],
        "sender_name": name,
        "sender_email": email,
        "message": text,
        "member_id": member.public_id if member else None,
    }
    # Both messages carry the sender's name and address: each names the sender as its subject.
    about = (contact_subject(email),) + ((member_subject(member),) if member else ())
    enqueue_notification(
        member=None,
        channel=Channel.EMAIL,
        kind="contact_message",
        dedupe_key=f"contact:{data.submission_id}:service",
        recipient=current_app.config["COMPANY_EMAIL"],
        locale="zh_Hans_CN",
        context=context,
        about=about,
    )
    # The typed address is not verified: its acknowledgement carries nothing the sender wrote
    # (name, message), or the form would relay anyone's text to any address.
    enqueue_notification(
        member=member,
        channel=Channel.EMAIL,
        kind="contact_ack",
        dedupe_key=f"contact:{data.submission_id}:ack",
        recipient=email,
        locale=locale,
        context={},
        about=about,
    )
    record_audit("contact.submitted", actor=member, subject=member, category=data.category)
