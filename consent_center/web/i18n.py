"""Language: the member's stored choice, else the session's, else the one this browser chose
before (a long-lived cookie, so it outlives signing out), else the browser's."""

from __future__ import annotations

from datetime import date, datetime

from flask import Flask, Response, current_app, g, has_request_context, request, session
from flask_login import current_user
from markupsafe import Markup

from ..domain import LOCALE_HTML_LANG, LOCALE_LABELS, Locale
from ..services.localtime import format_day, format_moment

_BROWSER_TAGS = {"en": Locale.EN, "zh": Locale.ZH}
LOCALE_COOKIE = "cc_locale"
# A language preference, no personal data: kept for a year, renewed on each choice.
LOCALE_COOKIE_MAX_AGE = 365 * 24 * 3600


def select_locale() -> str:
    if not has_request_context():  # CLI and workers pass the locale explicitly
        return Locale.EN
    if current_user and current_user.is_authenticated:
        return current_user.locale
    for chosen in (session.get("locale"), request.cookies.get(LOCALE_COOKIE)):
        if chosen in LOCALE_LABELS:
            return chosen
    best = request.accept_languages.best_match(["en", "zh", "zh-CN", "zh-Hans"])
    return _BROWSER_TAGS.get((best or "en")[:2], Locale.EN)


def remember_locale(response: Response, locale: str) -> Response:
    """Keep `locale` on this browser (on a language switch, and at sign-in from the member's
    stored choice), so the site stays in it after signing out."""
    if locale in LOCALE_LABELS:
        response.set_cookie(
            LOCALE_COOKIE,
            locale,
            max_age=LOCALE_COOKIE_MAX_AGE,
            secure=current_app.config["SESSION_COOKIE_SECURE"],
            httponly=True,
            samesite="Lax",
        )
    return response


def _translations():
    """The translations of the locale in force (as Flask-Babel's `get_translations()`, which
    `force_locale` also steers), found with one dictionary lookup: templates translate about
    a hundred strings per page, and Flask-Babel's own path costs several context lookups
    each."""
    from flask_babel import get_translations

    locale = getattr(g.get("_flask_babel"), "babel_locale", None) if g else None
    if locale is not None:
        found = _TRANSLATIONS.get(locale)
        if found is not None:
            return found
    found = get_translations()
    locale = getattr(g.get("_flask_babel"), "babel_locale", None) if g else None
    if locale is not None:
        _TRANSLATIONS[locale] = found
    return found


_TRANSLATIONS: dict = {}


def init_app(app: Flask) -> None:
    from flask_babel import gettext

    # Templates' _(), gettext and ngettext: Flask-Babel's, with a faster lookup.
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: _translations().ugettext(s),
        ngettext=lambda s, p, n: _translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: _translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: _translations().unpgettext(c, s, p, n),
    )

    from ..domain import (
        PURPOSES,
        REFUSAL_GROUNDS,
        REFUSAL_REMEDIES,
        WITHDRAWAL_NOTE,
    )

    app.jinja_env.filters["format_date"] = format_day
    app.jinja_env.filters["format_datetime"] = format_moment
    app.jinja_env.globals["purposes"] = PURPOSES
    app.jinja_env.globals["once_per_language"] = once_per_language
    app.jinja_env.filters["display_value"] = display_value
    app.jinja_env.globals["refusal_grounds"] = REFUSAL_GROUNDS
    app.jinja_env.globals["withdrawal_note"] = WITHDRAWAL_NOTE
    app.jinja_env.globals["refusal_remedies"] = REFUSAL_REMEDIES
    app.jinja_env.globals["locale_html_lang"] = LOCALE_HTML_LANG
    app.jinja_env.filters["purpose_titles"] = lambda keys: gettext(", ").join(
        str(PURPOSES[k].title) for k in keys
    )

    @app.context_processor
    def language_context() -> dict:
        from flask_babel import get_locale

        current = str(get_locale() or Locale.EN)
        return {
            "locales": LOCALE_LABELS,
            "current_locale": current,
            "html_lang": LOCALE_HTML_LANG.get(current, "en"),
        }


def display_value(value) -> object:
    """A stored value as a page shows it: dates and times in the reader's language, yes/no
    for flags, "(none)" for nothing."""
    from flask_babel import gettext

    if value is None or value == "":
        return Markup('<span class="muted">%s</span>') % gettext("(none)")
    if value is True or value is False:
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, datetime):
        return format_moment(value)
    if isinstance(value, date):
        return format_day(value)
    return value


def once_per_language(*key, caller) -> Markup:
    """A template's call block rendered once per language (and app), then reused as HTML:

        {% call once_per_language("footer") %}...{% endcall %}

    For parts of pages that depend on nothing but the language, the key and the app's
    config (navigation, footers, the inventory's tables): most of a page's markup, and
    most of its rendering time. Anything per member or per request stays outside."""
    from flask import current_app

    cache = current_app.extensions.setdefault("once_per_language", {})
    full_key = (key, current_locale(), request.script_root)
    html = cache.get(full_key)
    if html is None:
        html = cache[full_key] = Markup(caller())
    return html


def current_locale():
    """The request's babel Locale (Flask-Babel's `get_locale()`, after its first call one
    attribute lookup)."""
    from flask_babel import get_locale

    locale = getattr(g.get("_flask_babel"), "babel_locale", None)
    return locale if locale is not None else get_locale()
