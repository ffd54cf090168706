"""Guardian forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from ..forms import AppForm


class GuardianCodeForm(AppForm):
    code = StringField(
        _l("6-digit code"),
        validators=[DataRequired(_l("Enter the code we sent you.")), Length(max=12)],
    )


class DecisionForm(AppForm):
    guardian_name = StringField(_l("Your name"), validators=[Optional(), Length(max=100)])
    # Checked by the service when approving (a refusal needs no birth date).
    guardian_birth_date = DateField(
        _l("Your own date of birth"), validators=[Optional()], format="%Y-%m-%d"
    )
    trend_analysis = BooleanField(_l("Yes, my child's information may be used for trend analysis"))
    note = TextAreaField(_l("Note (optional)"), validators=[Length(max=1000)])


class InviteForm(AppForm):
    contact = StringField(
        _l("The other guardian's email or mobile number"),
        validators=[DataRequired(_l("Enter an email address or mobile number.")), Length(max=254)],
    )


class WardDeletionForm(AppForm):
    code = StringField(
        _l("Confirmation code"),
        validators=[DataRequired(_l("Enter the code we sent you.")), Length(max=12)],
    )
    reason = TextAreaField(_l("Why? (optional)"), validators=[Length(max=2000)])
    confirm = BooleanField(
        _l("I understand that this child's account will be closed and their data erased."),
        validators=[DataRequired(_l("Tick this box to confirm."))],
    )
