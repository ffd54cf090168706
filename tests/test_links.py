"""Links in messages come from the app's routes, on PUBLIC_BASE_URL (links.py)."""

from __future__ import annotations

import re
from pathlib import Path

from consent_center.clock import utcnow
from consent_center.links import public_url_for
from consent_center.services.notifications import render_message

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_a_link_uses_the_public_address_not_the_request_host(app):
    app.config["PUBLIC_BASE_URL"] = "https://privacy.example.com"
    with app.test_request_context("/", base_url="http://internal-host:8000"):
        assert public_url_for("member.overview") == "https://privacy.example.com/me"
        rendered = render_message(
            "deletion_received", "email", "en", {"request_id": "abc", "due_at": utcnow()}
        )
    assert "https://privacy.example.com/me/deletion/abc" in rendered.text
    assert "internal-host" not in rendered.text + rendered.html


def test_a_public_address_under_a_path_keeps_its_path(app):
    app.config["PUBLIC_BASE_URL"] = "https://example.com/privacy"
    with app.app_context():
        assert public_url_for("public.policy_short", number=3) == "https://example.com/privacy/p/3"
        assert (public_url_for("public.unsubscribe", public_id="x1")
                == "https://example.com/privacy/unsubscribe/x1")


def test_message_templates_build_links_from_routes():
    """No message template glues a base URL to a path by hand."""
    offenders = [
        str(path.relative_to(TEMPLATES))
        for folder in ("email", "sms")
        for path in (TEMPLATES / folder).iterdir()
        if re.search(r"public_base_url|https?://", path.read_text())
    ]
    assert not offenders, offenders
