"""Twilio webhooks: delivery status callbacks and inbound messages, signature-checked."""

from __future__ import annotations

from xml.sax.saxutils import escape

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_babel import force_locale

from ...extensions import csrf, db
from ...services.sms_events import handle_inbound_sms, record_sms_status
from ...twilio_adapter import signature_valid

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)  # authenticated by Twilio's signature instead

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def public_url() -> str:
    """The exact URL Twilio called: PUBLIC_BASE_URL + path + query in its original order."""
    base = current_app.config.get("PUBLIC_BASE_URL")
    query = request.query_string.decode("latin-1")
    if base:
        url = base.rstrip("/") + request.path
        return f"{url}?{query}" if query else url
    return request.url  # behind a proxy, configure PROXY_FIX_HOPS so this is the public URL


@bp.before_request
def verify_twilio_signature() -> None:
    """403 unless X-Twilio-Signature matches this request (missing counts as wrong)."""
    if not signature_valid(
        current_app.config.get("TWILIO_AUTH_TOKEN"),
        public_url(),
        request.form.to_dict(),
        request.headers.get("X-Twilio-Signature"),
    ):
        abort(403)


def _twiml(body: str = EMPTY_TWIML) -> Response:
    return Response(body, mimetype="text/xml")


@bp.post("/twilio/status")
def twilio_status():
    """Record a message's delivery status (idempotent, out-of-order safe)."""
    record_sms_status(
        request.form.get("MessageSid", ""),
        request.form.get("MessageStatus", ""),
        request.form.get("ErrorCode"),
    )
    db.session.commit()
    return _twiml()


@bp.post("/twilio/inbound")
def twilio_inbound():
    """STOP and friends opt out of SMS; START opts back in; HELP gets our contact details."""
    reply = handle_inbound_sms(
        request.form.get("From", ""),
        request.form.get("Body", ""),
        request.form.get("OptOutType"),
    )
    db.session.commit()
    if reply == "help":
        with force_locale("zh_Hans_CN" if request.form.get("From", "").startswith("+86") else "en"):
            text = render_template(
                "sms/help.txt",
                company_name=current_app.config["COMPANY_NAME"],
                company_phone=current_app.config["COMPANY_PHONE"],
                company_email=current_app.config["COMPANY_EMAIL"],
            ).strip()
        return _twiml(
            '<?xml version="1.0" encoding="UTF-8"?><Response><Message>'
            f"{escape(text)}</Message></Response>"
        )
    return _twiml()
