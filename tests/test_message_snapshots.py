"""Every email and SMS, in both languages, compared with a committed snapshot, so wording
changes show up in review. A normal run only compares: a missing or changed snapshot fails.
Rewrite them on purpose with `make snapshots` (`UPDATE_SNAPSHOTS=1`), then review the diff."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consent_center.services.notifications import fit_sms, render_message

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Only this switch writes snapshot files; `make snapshots` sets it.
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"
WHEN = datetime(2026, 12, 16, 1, 0, tzinfo=UTC)

CONTEXTS = {
    "sign_in_code": {"code": "123456", "minutes": 10},
    "verify_contact": {"code": "123456", "minutes": 10},
    "reauth_code": {"code": "123456", "minutes": 10},
    "code_lockout": {"until": WHEN},
    "guardian_code": {"code": "123456", "minutes": 10},
    "contact_change_code": {"code": "123456", "minutes": 10},
    "contact_changed": {"changed": "email", "new_masked": "n***@example.org"},
    "policy_notice": {"number": 2,
                      "summaries": {"en": "We explain trend analysis more clearly.",
                                    "zh_Hans_CN": "我们更清楚地说明了趋势分析。"},
                      "effective_at": WHEN, "changed_purpose_keys": ("advertising",)},
    "contact_message": {"category_label": "A question about privacy or this policy",
                        "sender_name": "Zhang San", "sender_email": "zs@example.org",
                        "message": "How long do you keep my data?", "member_id": None},
    "contact_ack": {},  # nothing the sender typed: the address is not verified
    "deletion_received": {"request_id": "REQ123", "due_at": WHEN, "refusal_ground": None,
                          "refusal_explanation": None},
    "deletion_refused": {"request_id": "REQ123", "due_at": WHEN,
                         "refusal_ground": "criminal_justice",
                         "refusal_explanation": "An investigation is open."},
    "deletion_completed": {"request_id": "REQ123"},
    "guardian_invite": {"minor_name": "Little Lee", "expires_at": WHEN, "inviter_name": None,
                        "link": "https://privacy.example.com/g/Xy3_k9QaLm2Zp8Rt"},
    "guardian_approved": {"guardian_name": "Parent Lee", "minor_name": "Little Lee",
                          "to_guardian": True},
    "guardian_refused": {},
    "guardian_change": {"guardian_name": "Parent Lee", "minor_name": "Little Lee",
                        "purpose": "trend_analysis", "granted": True},
    "guardian_ended": {"minor_name": "Little Lee", "to_guardian": False},
    "guardian_wait_expired": {"days": 30},
    "guardian_confirm": {"minor_name": "Little Lee", "purpose": "advertising", "expires_at": WHEN,
                         "link": "https://privacy.example.com/gc/Xy3_k9QaLm2Zp8Rt"},
    "guardian_reconsent": {"minor_name": "Little Lee", "purpose_keys": ("trend_analysis",),
                           "number": 2, "effective_at": WHEN},
    "incident_notice": {"incident_id": "INC123", "texts": {
        "en": {"what_happened": "On 1 March an attacker read part of our member database.",
               "data_involved": "Names and email addresses.",
               "our_response": "We closed the hole and told the regulator.",
               "member_actions": "Beware of emails that ask you to sign in.",
               "contact": "Customer service: 400-032-0988"},
        "zh_Hans_CN": {"what_happened": "3月1日，攻击者读取了部分会员数据库。",
                       "data_involved": "姓名和电子邮箱地址。",
                       "our_response": "我们已修复漏洞并已报告监管机构。",
                       "member_actions": "请警惕要求您登录的邮件。",
                       "contact": "客服电话：400-032-0988"}}},
    # The reply to an SMS "HELP" (web/webhooks): SMS only.
    "help": {},
}
# Kinds whose wording depends on the context: each variant has its own snapshot.
VARIANTS = {
    "guardian_invite.second_guardian": (
        "guardian_invite",
        dict(CONTEXTS["guardian_invite"], inviter_name="Parent Lee"),
    ),
}
LOCALES = ("en", "zh_Hans_CN")
CHANNELS = ("email", "sms")


def render_all(kind: str, locale: str, context: dict | None = None) -> str:
    parts = []
    for channel in CHANNELS:
        try:
            rendered = render_message(kind, channel, locale, dict(context or CONTEXTS[kind]))
        except Exception as exc:  # a kind without an SMS template
            if "TemplateNotFound" in type(exc).__name__:
                continue
            raise
        if channel == "email":
            parts += [f"--- email subject\n{rendered.subject}", f"--- email text\n{rendered.text}",
                      f"--- email html\n{rendered.html}"]
        else:
            parts.append(f"--- sms ({len(rendered.text)} chars)\n{rendered.text}")
    return "\n".join(parts).rstrip() + "\n"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", sorted(CONTEXTS))
def test_message_matches_snapshot(app, kind, locale):
    app.config["PUBLIC_BASE_URL"] = "https://privacy.example.com"
    text = render_all(kind, locale)
    path = SNAPSHOTS / f"{kind}.{locale}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: run `make snapshots` and commit it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} changed: review, then `make snapshots`"
    )


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_message_variant_matches_snapshot(app, variant, locale):
    app.config["PUBLIC_BASE_URL"] = "https://privacy.example.com"
    kind, context = VARIANTS[variant]
    text = render_all(kind, locale, context)
    path = SNAPSHOTS / f"{variant}.{locale}.txt"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path.name} is missing: run `make snapshots` and commit it"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} changed: review, then `make snapshots`"
    )
    sms = render_message(kind, "sms", locale, dict(context))
    assert len(sms.text) <= (160 if sms.text.isascii() else 70), sms.text


SMS_KINDS = sorted(p.stem for p in (TEMPLATES / "sms").glob("*.txt") if p.stem in CONTEXTS)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", SMS_KINDS)
def test_sms_fits_one_segment(app, kind, locale):
    app.config["PUBLIC_BASE_URL"] = "https://privacy.example.com"
    rendered = render_message(kind, "sms", locale, dict(CONTEXTS[kind]))
    limit = 160 if rendered.text.isascii() else 70
    assert len(rendered.text) <= limit and not rendered.text.endswith("…"), rendered.text
    assert fit_sms("x" * 200).endswith("…")


def message_kinds() -> set[str]:
    """Every kind of message there is: each email or SMS template (`<kind>.*`) names one."""
    names = [p.name for folder in ("email", "sms") for p in (TEMPLATES / folder).iterdir()]
    return {name.split(".")[0] for name in names if not name.startswith("_")}


def test_every_message_kind_has_a_committed_snapshot_in_each_language():
    kinds = message_kinds()
    assert kinds == set(CONTEXTS), "each message kind needs a context here and a snapshot"
    assert {kind for kind, _ in VARIANTS.values()} <= kinds
    named = kinds | set(VARIANTS)
    expected = {f"{name}.{locale}.txt" for name in named for locale in LOCALES}
    assert {p.name for p in SNAPSHOTS.glob("*.txt")} == expected, "run `make snapshots`"
