"""Registration and sign-in forms. There is no password field anywhere, by design."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import BooleanField, DateField, EmailField, SelectField, StringField, TelField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from ...domain import GENDER_LABELS, LOCALE_LABELS, Locale
from ..forms import AppForm, valid_email, valid_phone


def gender_choices():
    return [("", _l("Prefer not to say"))] + [(k.value, v) for k, v in GENDER_LABELS.items()]


def locale_choices():
    return [(k.value, v) for k, v in LOCALE_LABELS.items()]


class RegisterForm(AppForm):
    name = StringField(
        _l("Name"), validators=[DataRequired(_l("Tell us your name.")), Length(max=100)]
    )
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Enter your email address.")), Length(max=254), valid_email],
    )
    phone = TelField(
        _l("Mobile number (optional)"), validators=[Optional(), Length(max=32), valid_phone]
    )
    gender = SelectField(
        _l("Gender (optional)"), choices=gender_choices, default="", validate_choice=False
    )
    birth_date = DateField(
        _l("Date of birth"),
        validators=[InputRequired(_l("Enter your date of birth."))],
        format="%Y-%m-%d",
    )
    locale = SelectField(
        _l("Preferred language"), choices=locale_choices, default=Locale.EN, validate_choice=False
    )
    guardian_contact = StringField(
        _l("Parent's or guardian's email or mobile number (optional)"),
        validators=[Optional(), Length(max=254)],
    )
    trend_analysis = BooleanField(_l("Yes, use my information for trend analysis"))
    advertising = BooleanField(_l("Yes, use my information for advertising planning"))


class SignInForm(AppForm):
    identifier = StringField(
        _l("Email address or mobile number"),
        validators=[
            DataRequired(_l("Enter your email address or mobile number.")),
            Length(max=254),
        ],
    )


class CodeForm(AppForm):
    code = StringField(
        _l("6-digit code"),
        validators=[DataRequired(_l("Enter the code we sent you.")), Length(max=12)],
    )
