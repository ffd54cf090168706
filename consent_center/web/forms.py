"""Form helpers shared by every area."""

from __future__ import annotations

from flask_wtf import FlaskForm


def apply_field_errors(form: FlaskForm, field_errors: dict[str, list]) -> None:
    """Show a service's field errors beside the form's fields (others go to form-level)."""
    for name, messages in field_errors.items():
        field = getattr(form, name, None)
        if field is not None and hasattr(field, "errors"):
            field.errors = list(field.errors) + list(messages)
        else:
            form.form_errors.extend(messages)
