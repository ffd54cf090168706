"""Forms of the staff console."""

from __future__ import annotations

from datetime import date

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    HiddenField,
    SearchField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ...domain import MEMBER_STATUS_LABELS, OPTIONAL_PURPOSES, PURPOSES, ROLE_LABELS, Role
from ...services.dashboard import SERIES_DAYS, SERIES_RANGES
from ...services.incidents import AUDIENCE_STATUSES, FIELD_LABELS, FIELDS
from ..forms import AppForm


def _purpose_choices():
    return [(key, PURPOSES[key].title) for key in OPTIONAL_PURPOSES]


class PolicyDraftForm(AppForm):
    # The draft being edited (empty for a new one): the preview endpoint needs to know.
    draft = HiddenField()
    # The words in each language; the Chinese fields carry their language (WCAG 3.1.2).
    title = StringField(_l("Title in English"), validators=[Length(max=200)])
    summary = TextAreaField(_l("Summary of changes in English (members read this first)"))
    body_md = TextAreaField(_l("Policy text in English (Markdown)"))
    title_zh = StringField(
        _l("Title in Simplified Chinese"),
        validators=[Length(max=200)],
        render_kw={"lang": "zh-Hans"},
    )
    summary_zh = TextAreaField(
        _l("Summary of changes in Simplified Chinese"), render_kw={"lang": "zh-Hans"}
    )
    body_md_zh = TextAreaField(
        _l("Policy text in Simplified Chinese (Markdown)"), render_kw={"lang": "zh-Hans"}
    )
    changed_purposes = SelectMultipleField(
        _l("Purposes whose terms this version changes"),
        choices=_purpose_choices,
        validate_choice=False,
    )
    effective_on = DateField(
        _l("Takes effect on"),
        validators=[InputRequired(_l("Choose the date it takes effect."))],
    )


class ConfirmForm(AppForm):
    confirm = BooleanField(validators=[DataRequired(_l("Tick this box to confirm."))])


class PublishForm(ConfirmForm):
    confirm = BooleanField(
        _l("I have checked the text, the summary and the date. Publish it and notify members."),
        validators=[DataRequired(_l("Tick this box to confirm."))],
    )


class SendIncidentForm(ConfirmForm):
    confirm = BooleanField(
        _l("I have checked both language versions and the recipients. Send the notice now."),
        validators=[DataRequired(_l("Tick this box to confirm."))],
    )


class MemberSearchForm(AppForm):
    """A GET form: the URL is the search, so it can be bookmarked and shared."""

    class Meta:
        csrf = False

    q = SearchField(_l("Name, email, phone or member number"), validators=[Length(max=200)])


class ChartRangeForm(AppForm):
    """The consent chart's period (a GET form: the address is the chart)."""

    class Meta:
        csrf = False

    days = SelectField(
        _l("Period"),
        choices=lambda: [(n, _l("The last %(n)d days", n=n)) for n in SERIES_RANGES],
        coerce=int,
        default=SERIES_DAYS,
    )


class AuditFilterForm(AppForm):
    class Meta:
        csrf = False

    actor = StringField(
        _l("Done by (a member number or an email address)"), validators=[Length(max=254)]
    )
    action = StringField(_l("What was done"), validators=[Length(max=64)])
    since = DateField(_l("On or after"), validators=[Optional()])
    until = DateField(_l("On or before"), validators=[Optional()])


_LANGUAGE_PREFIXES = {"en": "en", "zh": "zh_Hans_CN"}


def _status_choices():
    return [("", _l("Any (not erased)"))] + [
        (s.value, MEMBER_STATUS_LABELS[s]) for s in AUDIENCE_STATUSES
    ]


class IncidentForm(AppForm):
    """Every part of the notice in English (en_*) and Chinese (zh_*), and the audience."""

    status = SelectField(_l("Account status"), choices=_status_choices, validate_choice=False)
    registered_after = DateField(_l("Registered on or after"), validators=[Optional()])
    registered_before = DateField(_l("Registered before"), validators=[Optional()])
    purpose = SelectField(
        _l("Consented to"),
        choices=lambda: [("", _l("Any")), *_purpose_choices()],
        validate_choice=False,
    )

    def content(self) -> dict:
        """The texts as the service takes them: {locale: {part: text}}."""
        return {
            locale: {name: self[f"{prefix}_{name}"].data or "" for name in FIELDS}
            for prefix, locale in _LANGUAGE_PREFIXES.items()
        }

    def audience(self) -> dict:
        return {
            "status": self.status.data or None,
            "registered_after": self.registered_after.data,
            "registered_before": self.registered_before.data,
            "purpose": self.purpose.data or None,
        }

    def fill(self, content: dict, audience: dict) -> None:
        for prefix, locale in _LANGUAGE_PREFIXES.items():
            for name in FIELDS:
                self[f"{prefix}_{name}"].data = (content.get(locale) or {}).get(name, "")
        self.status.data = audience.get("status") or ""
        self.purpose.data = audience.get("purpose") or ""
        for name in ("registered_after", "registered_before"):
            value = audience.get(name)
            self[name].data = date.fromisoformat(value) if value else None


for _prefix in _LANGUAGE_PREFIXES:
    for _name in FIELDS:
        setattr(
            IncidentForm,
            f"{_prefix}_{_name}",
            TextAreaField(FIELD_LABELS[_name], validators=[Length(max=4000)]),
        )


def _role_choices():
    return [(role.value, ROLE_LABELS[role]) for role in (Role.STAFF, Role.ADMIN)]


class TeamAddForm(AppForm):
    email = EmailField(_l("Email address"), validators=[Length(max=254)])
    role = SelectField(_l("Role"), choices=_role_choices, validate_choice=False)


class TeamRoleForm(AppForm):
    role = SelectField(_l("Role"), choices=_role_choices, validate_choice=False)
