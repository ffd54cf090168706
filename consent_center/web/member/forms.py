"""Forms on the member's own pages."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import DateField, EmailField, HiddenField, SelectField, StringField, TelField
from wtforms.validators import DataRequired, Length, Optional

from ..auth.forms import gender_choices, locale_choices
from ..forms import AppForm


class ConsentForm(AppForm):
    # The answer the member is giving: "1" to grant, "0" to withdraw.
    granted = HiddenField(validators=[DataRequired()])


class ProfileForm(AppForm):
    name = StringField(
        _l("Name"), validators=[DataRequired(_l("Tell us your name.")), Length(max=100)]
    )
    gender = SelectField(_l("Gender (optional)"), choices=gender_choices, validate_choice=False)
    locale = SelectField(_l("Preferred language"), choices=locale_choices, validate_choice=False)
    birth_date = DateField(_l("Date of birth"), validators=[Optional()], format="%Y-%m-%d")
    email = EmailField(_l("Email address"), validators=[Optional(), Length(max=254)])
    phone = TelField(_l("Mobile number (optional)"), validators=[Optional(), Length(max=32)])


class EmptyForm(AppForm):
    """A form with only the CSRF token, for one-button actions."""
