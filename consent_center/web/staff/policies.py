"""Staff: policy versions — draft in English and Simplified Chinese Markdown with a live
preview, compare each language, publish."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from ...clock import utcnow
from ...domain import OPTIONAL_PURPOSES, PURPOSES, Locale
from ...extensions import db
from ...models.policy import TEXT_COLUMNS, PolicyText, PolicyVersion
from ...services import policies as policy_service
from ...services.errors import Invalid
from ...services.localtime import (
    display_zone,
    earliest_local_day,
    format_day,
    local_day_start,
)
from ...services.policy_text import diff_of, render_markdown
from ..forms import apply_field_errors
from ..htmx import render_page_or_fragment
from .forms import ConfirmForm, PolicyDraftForm, PublishForm
from .views import bp

STATUS_LABELS = {
    policy_service.DRAFT: _l("Draft"),
    policy_service.SCHEDULED: _l("Scheduled"),
    policy_service.IN_EFFECT: _l("In effect"),
    policy_service.SUPERSEDED: _l("Superseded"),
}


def _earliest_dates() -> dict[str, object]:
    """The first effective date each notice period allows, counted from now."""
    config, now = current_app.config, utcnow()
    return {
        "plain": earliest_local_day(now + timedelta(days=config["POLICY_NOTICE_DAYS"])),
        "purpose": earliest_local_day(now + timedelta(days=config["POLICY_PURPOSE_NOTICE_DAYS"])),
        "plain_days": config["POLICY_NOTICE_DAYS"],
        "purpose_days": config["POLICY_PURPOSE_NOTICE_DAYS"],
    }


# The language sections of the staff pages, English first; each shows its words with `lang`.
LANGUAGE_NAMES = {Locale.EN: _l("English"), Locale.ZH: _l("Simplified Chinese")}


def _form_texts(form: PolicyDraftForm) -> dict[str, PolicyText]:
    return {
        Locale.EN: PolicyText(
            Locale.EN, form.title.data or "", form.body_md.data or "", form.summary.data or ""
        ),
        Locale.ZH: PolicyText(
            Locale.ZH,
            form.title_zh.data or "",
            form.body_md_zh.data or "",
            form.summary_zh.data or "",
        ),
    }


def _languages(texts: dict[str, PolicyText], base: PolicyVersion | None) -> list[dict]:
    """Per language: its name, its words rendered, and what changes from `base` in it."""
    return [
        {
            "name": LANGUAGE_NAMES[locale],
            "text": text,
            "rendered": render_markdown(text.body_md),
            "diff": diff_of(base.text(locale), text) if base is not None else None,
        }
        for locale, text in texts.items()
    ]


def _preview_context(form: PolicyDraftForm, draft=None) -> dict:
    base = policy_service.diff_base(draft) if draft is not None else policy_service.current_policy()
    return {"languages": _languages(_form_texts(form), base), "base": base}


def _form_context(form: PolicyDraftForm, draft=None) -> dict:
    return {
        "form": form,
        "draft": draft,
        "save_url": (
            url_for("staff.policy_edit", public_id=draft.public_id)
            if draft is not None
            else url_for("staff.policy_new")
        ),
        "purposes": [(key, PURPOSES[key].title) for key in OPTIONAL_PURPOSES],
        "earliest": _earliest_dates(),
        **_preview_context(form, draft),
    }


def _form_page(form: PolicyDraftForm, draft=None, status: int = 200):
    return render_template("staff/policy_form.html", **_form_context(form, draft)), status


def _save(form: PolicyDraftForm, draft=None):
    """Validate and save; a redirect on success, the form with errors (422) otherwise."""
    if form.validate_on_submit():
        changed = tuple(form.changed_purposes.data or ())
        try:
            draft = policy_service.save_draft(
                current_user,
                draft,
                texts=_form_texts(form),
                changed_purposes=changed,
                effective_at=local_day_start(form.effective_on.data),
                config=current_app.config,
            )
        except Invalid as exc:
            db.session.rollback()
            errors = dict(exc.field_errors)
            if "effective_at" in errors:
                earliest = _earliest_dates()["purpose" if changed else "plain"]
                errors["effective_on"] = [
                    *errors.pop("effective_at"),
                    _("Choose %(date)s or later.", date=format_day(earliest)),
                ]
            apply_field_errors(form, errors)
        else:
            db.session.commit()
            flash(_("The draft is saved. Nothing is published yet."), "status")
            return redirect(url_for("staff.policy", public_id=draft.public_id), 303)
    return _form_page(form, draft, status=422)


def _publish_problems(draft: PolicyVersion) -> list:
    """What stops a draft from being published now, to show before staff try."""
    errors = policy_service.publish_errors(
        draft.texts, draft.effective_at, draft.changed_purpose_keys, utcnow()
    )
    return [message for messages in errors.values() for message in messages]


@bp.get("/policies")
def policies():
    """Every version with its status: draft, scheduled, in effect or superseded."""
    return render_template(
        "staff/policies.html", versions=policy_service.staff_versions(), labels=STATUS_LABELS
    )


@bp.route("/policies/new", methods=["GET", "POST"])
def policy_new():
    """Draft a new version, starting from the text in effect."""
    form = PolicyDraftForm()
    if request.method == "POST":
        return _save(form)
    current = policy_service.current_policy()
    if current is not None:
        _fill(form, current)
    else:
        form.title.data = _("Privacy policy")
    form.summary.data = form.summary_zh.data = ""
    return _form_page(form)


def _fill(form: PolicyDraftForm, version: PolicyVersion) -> None:
    """Put a version's words in both languages into the form."""
    for locale, (title, body, summary) in TEXT_COLUMNS.items():
        text = version.text(locale)
        form[title].data, form[body].data, form[summary].data = (
            text.title,
            text.body_md,
            text.summary,
        )


@bp.post("/policies/preview")
def policy_preview():
    """The text as members will see it and what changes, for the live preview."""
    form = PolicyDraftForm()  # CSRF is checked app-wide; nothing else to validate here
    draft = None
    if form.draft.data:
        draft = policy_service.load_draft_for_staff(current_user, form.draft.data)
    return render_page_or_fragment(
        "staff/policy_form.html", "staff/_policy_preview.html", **_form_context(form, draft)
    )


@bp.get("/policies/<public_id>")
def policy(public_id: str):
    """One version: its summary, its text, and what it changes."""
    version = policy_service.load_version_for_staff(current_user, public_id)
    current = policy_service.current_policy()
    base = policy_service.diff_base(version)
    status = policy_service.version_status(version, current)
    return render_template(
        "staff/policy.html",
        version=version,
        status=status,
        labels=STATUS_LABELS,
        base=base,
        languages=_languages(version.texts, base),
        problems=_publish_problems(version) if status == policy_service.DRAFT else [],
        discard_form=ConfirmForm(),
    )


@bp.route("/policies/<public_id>/edit", methods=["GET", "POST"])
def policy_edit(public_id: str):
    """Change a draft (a published version answers 409: it never changes)."""
    draft = policy_service.load_draft_for_staff(current_user, public_id)
    form = PolicyDraftForm()
    if request.method == "POST":
        return _save(form, draft)
    form.draft.data = draft.public_id
    _fill(form, draft)
    form.changed_purposes.data = list(draft.changed_purpose_keys)
    form.effective_on.data = draft.effective_at.astimezone(display_zone()).date()
    return _form_page(form, draft)


@bp.route("/policies/<public_id>/publish", methods=["GET", "POST"])
def policy_publish(public_id: str):
    """Confirm, then publish: members are told at once and the fan-out page opens."""
    draft = policy_service.load_draft_for_staff(current_user, public_id)
    form = PublishForm()
    status, problems = 200, []
    if request.method == "POST":
        status = 422
        if form.validate_on_submit():
            try:
                fan = policy_service.publish_draft(draft, current_user)
            except Invalid as exc:
                db.session.rollback()
                problems = [m for messages in exc.field_errors.values() for m in messages]
            else:
                db.session.commit()
                flash(
                    _(
                        "Version %(n)d is published and takes effect on %(date)s. Members "
                        "see the notice now; the messages are on their way.",
                        n=draft.number,
                        date=format_day(draft.effective_at),
                    ),
                    "status",
                )
                return redirect(url_for("staff.fan_out", public_id=fan.public_id), 303)
    base = policy_service.diff_base(draft)
    return render_template(
        "staff/policy_publish.html",
        version=draft,
        form=form,
        problems=problems,
        reach=policy_service.notice_reach(),
        base=base,
        languages=_languages(draft.texts, None),
    ), status


@bp.post("/policies/<public_id>/discard")
def policy_discard(public_id: str):
    """Delete a draft that will not be published."""
    draft = policy_service.load_draft_for_staff(current_user, public_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        flash(_("Tick the box to confirm that the draft should be deleted."), "status")
        return redirect(url_for("staff.policy", public_id=public_id), 303)
    policy_service.discard_draft(current_user, draft)
    db.session.commit()
    flash(_("The draft is deleted."), "status")
    return redirect(url_for("staff.policies"), 303)
