"""Form helpers shared by every area."""

from __future__ import annotations

from flask import current_app
from flask_babel import get_translations
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms.validators import ValidationError

from ..extensions import db
from ..services.code_budget import CodeBudgetSpent
from ..services.errors import Invalid, TooManyAttempts
from ..services.sms_guard import sms_country_problem
from ..services.validation import (
    CARD_NUMBER_MESSAGE,
    CREDENTIAL_MESSAGE,
    normalize_email,
    normalize_phone,
)


class AppForm(FlaskForm):
    """The base of every form here: Flask-WTF's, whose WTForms messages ("This field is
    required.") come in the page's language from the page's own catalogue (WTForms' messages
    are merged into it: config `BABEL_DOMAIN`), not from a catalogue read per request."""

    class Meta:
        def get_translations(self, form):
            return get_translations()


def apply_field_errors(form: FlaskForm, field_errors: dict[str, list]) -> None:
    """Show a service's field errors beside the form's fields (others go to form-level).

    A field refused for holding a card number or a credential is emptied, so the page does
    not show the secret back (or keep it in the browser's form history).
    """
    secret_messages = {str(CARD_NUMBER_MESSAGE), str(CREDENTIAL_MESSAGE)}
    for name, messages in field_errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            # Each message once, even when a form check and the service both found it.
            field.errors = list(dict.fromkeys([*field.errors, *messages]))
            if any(str(m) in secret_messages for m in messages):
                field.data, field.raw_data = "", [""]
        else:
            form.form_errors.extend(m for m in messages if m not in form.form_errors)


# Field checks that use the services' own rules, so a form reports every error in one round.


def valid_email(form, field) -> None:
    if field.data and normalize_email(field.data) is None:
        raise ValidationError(_l("Enter a valid email address."))


def valid_phone(form, field) -> None:
    if not field.data:
        return
    phone = normalize_phone(field.data, current_app.config["DEFAULT_PHONE_REGION"])
    if phone is None:
        raise ValidationError(
            _l("Enter a valid mobile number, with its country code for numbers outside China.")
        )
    if problem := sms_country_problem(phone):
        raise ValidationError(problem)


def check_code_form(form: FlaskForm, check, on_lockout=None) -> tuple[object, int | None]:
    """Run `check()`, a service that checks the form's one-time code, and commit whatever
    happens, so wrong attempts are counted.

    :param on_lockout: called after too many wrong attempts (e.g. to forget the pending code).
    :returns: ``(result, None)`` on success, else ``(None, status)`` with the error shown
        beside the code field (422 wrong or expired, 429 too many attempts).
    :raises CodeBudgetSpent: when `check()` sends a code and its budget is spent; the error
        handler rolls back and answers 429 with ``Retry-After``.
    """
    try:
        result = check()
    except CodeBudgetSpent:
        # The code was right but the code it unlocks may not be sent yet: keep nothing (the
        # code stays unused), and let the error handler say when to try again.
        raise
    except TooManyAttempts as exc:
        db.session.commit()
        if on_lockout is not None:
            on_lockout()
        form.code.errors = [exc.message]
        return None, 429
    except Invalid as exc:
        db.session.commit()
        apply_field_errors(form, exc.field_errors or {"code": [exc.message]})
        return None, 422
    db.session.commit()
    return result, None
