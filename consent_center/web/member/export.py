"""Taking a copy of one's data: re-authenticate with a fresh code, then download it as JSON
or CSV. Guardians use the same page and download for a ward (web/guardian/views.py)."""

from __future__ import annotations

import json

from flask import Response, abort, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import StringField
from wtforms.validators import AnyOf, DataRequired, Length

from ...extensions import db
from ...services import member_data
from ..forms import AppForm
from ..reauth import EXPORT
from .forms import EmptyForm
from .views import bp


class ExportForm(AppForm):
    code = StringField(
        _l("Confirmation code"),
        validators=[DataRequired(_l("Enter the code we sent you.")), Length(max=12)],
    )
    # Set by the button pressed: one per format.
    file_format = StringField(
        validators=[AnyOf(member_data.EXPORT_FORMATS, message=_l("Choose JSON or CSV."))]
    )


def download(data: dict, file_format: str, stem: str) -> Response:
    """The export as a file to save: JSON (the documented schema) or CSV."""
    if file_format == "csv":
        # A byte order mark, so spreadsheet programs read the Chinese text as UTF-8.
        body, mimetype = "\ufeff" + member_data.export_csv(data), "text/csv"
    else:
        body, mimetype = json.dumps(data, ensure_ascii=False, indent=2), "application/json"
    return Response(
        body,
        mimetype=mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{stem}.{file_format}"',
            "Cache-Control": "no-store",
        },
    )


def export_page(*, subject, send_url: str, confirm_url: str, form: ExportForm | None,
                status: int = 200):
    return render_template(
        "member/export.html",
        subject=subject,
        send_url=send_url,
        confirm_url=confirm_url,
        send_form=EmptyForm(),
        form=form,
    ), status


def _page(form: ExportForm | None = None, status: int = 200):
    return export_page(
        subject=None,
        send_url=url_for("member.export_send_code"),
        confirm_url=url_for("member.export_confirm"),
        form=form,
        status=status,
    )


@bp.get("/export")
def export():
    """What the copy of your data holds, in which formats, and how to ask for it."""
    return _page(ExportForm() if EXPORT.pending() else None)


@bp.post("/export/code")
def export_send_code():
    """Send a fresh code to re-authenticate before a copy of the data leaves."""
    if not EmptyForm().validate_on_submit():
        abort(400)
    EXPORT.send(current_user)
    return redirect(url_for("member.export") + "#export-confirm", 303)


@bp.post("/export")
def export_confirm():
    """Check the code, then send the copy in the chosen format."""
    form = ExportForm()
    status = 422
    if form.validate_on_submit():
        failed = EXPORT.check(form, current_user)
        if failed:
            status = failed
        else:
            data = member_data.export_member_data(
                current_user, actor=current_user, file_format=form.file_format.data
            )
            db.session.commit()
            EXPORT.forget()
            return download(data, form.file_format.data, "my-data")
    return _page(form, status)
