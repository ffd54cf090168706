"""Templates keep the strict-CSP and htmx rules (HOUSE_STYLE.md): no inline script or style,
no hx-on / js: / trigger filters, every POST form carries a CSRF token, no CDN."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Email bodies are not served under our CSP and need inline styles for mail clients.
PAGE_TEMPLATES = sorted(p for p in TEMPLATES.rglob("*.html") if "email" not in p.parts)

RULES = {
    "inline script": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    "inline style attribute": re.compile(r"\sstyle\s*=", re.I),
    "style element": re.compile(r"<style[\s>]", re.I),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.I),
    "hx-on": re.compile(r"\s(data-)?hx-on", re.I),
    "js: value": re.compile(r"[\"']\s*js:", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "trigger filter": re.compile(r"hx-trigger\s*=\s*\"[^\"]*\[", re.I),
    "CDN": re.compile(r"(unpkg|jsdelivr|cdnjs|googleapis)\.", re.I),
}


@pytest.mark.parametrize("path", PAGE_TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_template_follows_csp_and_htmx_rules(path: Path):
    text = path.read_text(encoding="utf-8")
    broken = [name for name, rule in RULES.items() if rule.search(text)]
    assert not broken, f"{path.name}: {broken}"


@pytest.mark.parametrize("path", PAGE_TEMPLATES, ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_every_post_form_has_a_csrf_token(path: Path):
    text = path.read_text(encoding="utf-8")
    for form in re.findall(r"<form[^>]*method=\"post\"[^>]*>.*?</form>", text, re.S | re.I):
        assert "csrf_token" in form, f"{path.name}: a POST form without csrf_token"


def test_csrf_header_is_inherited_from_body():
    base = (TEMPLATES / "base.html").read_text(encoding="utf-8")
    assert re.search(r"<body[^>]*hx-headers:inherited='\{\"X-CSRFToken\"", base)


def test_htmx_posts_sit_on_real_forms():
    """Every hx-post is on a <form> whose action is the same URL (works without JS)."""
    for path in PAGE_TEMPLATES:
        text = path.read_text(encoding="utf-8")
        for tag in re.findall(r"<[a-z]+[^>]*hx-post=[^>]*>", text, re.S):
            assert tag.startswith("<form"), f"{path.name}: hx-post outside a form: {tag[:60]}"
            action = re.search(r'action="([^"]+)"', tag).group(1)
            if action == "{{ action }}":  # computed once in the template, used for both
                continue
            assert f'hx-post="{action}"' in tag, f"{path.name}: hx-post differs from action"
