"""English and Simplified Chinese: complete catalogues, switching, and the stored choice."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

from consent_center.extensions import db
from tests.conftest import post

PO = Path(__file__).resolve().parent.parent / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def test_chinese_catalogue_is_complete_and_placeholders_match():
    with open(PO / "messages.po", "rb") as f:
        catalog = read_po(f)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings) or message.fuzzy:
            problems.append(f"untranslated: {ids[0]!r}")
            continue
        for s in strings:
            if set(PLACEHOLDER.findall(ids[0])) != set(PLACEHOLDER.findall(s)):
                problems.append(f"placeholders differ: {ids[0]!r}")
    assert not problems, problems


def test_catalogue_covers_every_message_in_the_code():
    """Run `make messages` after changing text: the .po must know every msgid."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parent.parent
    with open(PO / "messages.po", "rb") as f:
        known = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
    method_map = [
        ("consent_center/**.py", "python"),
        ("templates/**.html", "jinja2"),
        ("templates/**.txt", "jinja2"),
    ]
    missing = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(root),
        method_map,
        keywords={"_": None, "_l": None, "lazy_gettext": None, "gettext": None, "ngettext": (1, 2)},
    ):
        msgid = message if isinstance(message, str) else message[0]
        if msgid and msgid not in known:
            missing.add(msgid)
    assert not missing, sorted(missing)


def test_browser_language_picks_chinese(client):
    page = client.get("/", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page and "隐私政策" in page


def test_switcher_changes_language_and_is_stored_for_members(client, member, login_as):
    login_as(member)
    response = post(client, "/language", {"locale": "zh_Hans_CN", "next": "/me"})
    assert response.status_code == 303 and response.headers["Location"] == "/me"
    page = client.get("/me").get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page and "我们保存的您的信息" in page
    db.session.refresh(member)
    assert member.locale == "zh_Hans_CN"


def test_switcher_refuses_offsite_next(client):
    response = post(client, "/language", {"locale": "en", "next": "https://evil.example/"})
    assert response.headers["Location"] == "/"


def _words_of_main(page: str) -> set[str]:
    main = page.split("<main", 1)[1].split(">", 1)[1].split("</main>", 1)[0]
    return set(re.findall(r"[A-Za-z]{4,}", re.sub(r"<[^>]+>", " ", main)))


def test_every_public_page_renders_in_chinese(client, policy):
    paths = ("/", "/policy", "/policy/versions", "/policy/versions/1", "/contact", "/sign-in",
             "/register")
    english = {path: _words_of_main(client.get(path).get_data(as_text=True)) for path in paths}
    client.get("/", headers={"Accept-Language": "zh"})
    post(client, "/language", {"locale": "zh_Hans_CN"})
    # Data stays as written (the test policy's own text, the company's details) and the
    # language switcher names English in English; no other English word of the page may.
    data = set(re.findall(r"[A-Za-z]{4,}", " ".join(
        [policy.title, policy.body_md, policy.summary, "AUTOOL aftersale autooltech English"])))
    for path in paths:
        page = client.get(path).get_data(as_text=True)
        assert '<html lang="zh-Hans">' in page, path
        assert "同意管理中心" in page, path
        left = _words_of_main(page) & english[path] - data
        assert not left, (path, left)


def test_templates_translate_fill_and_escape_as_jinja_s_gettext_does(app):
    """Templates translate through the render's catalogue (web/i18n.py): a translated text
    is escaped like any value, its placeholders filled; plurals pick their form."""
    from flask import render_template_string
    from flask_babel import force_locale

    page = (
        "{{ _('Table: %(title)s', title='<b>') }}|{{ gettext('Consent Center') }}|"
        "{{ ngettext('We hold %(num)d record.', 'We hold %(num)d records.', 2) }}"
    )
    with app.test_request_context("/"):
        with force_locale("en"):
            english = render_template_string(page)
        with force_locale("zh_Hans_CN"):
            chinese = render_template_string(page)
    assert english == "Table: &lt;b&gt;|Consent Center|We hold 2 records."
    assert "&lt;b&gt;" in chinese and "<b>" not in chinese
    assert "Consent Center" not in chinese and "2" in chinese.split("|")[2]


ENGLISH_BROWSER = {"Accept-Language": "en-GB,en;q=0.9"}


def test_a_member_who_chose_chinese_stays_in_chinese_after_signing_out(client):
    from tests.conftest import make_member
    from tests.test_auth import latest_code

    member = make_member(locale="zh_Hans_CN")
    post(client, "/sign-in", {"identifier": member.email}, headers=ENGLISH_BROWSER)
    response = post(client, "/sign-in/code", {"code": latest_code(member.email)})
    assert response.status_code == 303
    cookie = client.get_cookie("cc_locale")
    assert cookie.value == "zh_Hans_CN" and cookie.http_only and cookie.max_age >= 365 * 24 * 3600
    assert post(client, "/sign-out", {}).status_code == 303
    page = client.get("/", headers=ENGLISH_BROWSER).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page


def test_an_anonymous_visitors_choice_outlives_the_session(client):
    post(client, "/language", {"locale": "zh_Hans_CN", "next": "/"})
    with client.session_transaction() as session:
        session.clear()  # as after signing out, or a new browser session
    page = client.get("/", headers=ENGLISH_BROWSER).get_data(as_text=True)
    assert '<html lang="zh-Hans">' in page
    post(client, "/language", {"locale": "en", "next": "/"})
    with client.session_transaction() as session:
        session.clear()
    page = client.get("/", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert '<html lang="en">' in page


def test_a_members_stored_language_wins_over_the_cookie(client, member, login_as):
    client.set_cookie("cc_locale", "zh_Hans_CN")
    login_as(member)  # English
    assert '<html lang="en">' in client.get("/me").get_data(as_text=True)


def test_the_translator_gives_what_str_gives_for_every_inventory_text(app):
    """/me translates the inventory's texts through one catalogue lookup
    (`domain.text.translator`): each text, with its variables filled, reads exactly as
    `str()` reads it, in both languages; every inventory text is a `Text`, so none takes
    the slow road."""
    from flask_babel import force_locale

    from consent_center.domain import PURPOSES, SOURCE_LABELS
    from consent_center.domain.text import Text, translator
    from consent_center.models import DATA_INVENTORY

    texts = [t for g in DATA_INVENTORY for t in (g.title, g.description)]
    fields = [f for g in DATA_INVENTORY for f in g.fields]
    texts += [t for f in fields for t in (f.label, f.retention, f.recipients)]
    texts += [p.title for p in PURPOSES.values()] + list(SOURCE_LABELS.values())
    assert all(isinstance(t, Text) for t in texts)
    assert any(t.variables for t in texts)  # a retention rule naming a setting
    with app.test_request_context("/"):
        for locale in ("en", "zh_Hans_CN"):
            with force_locale(locale):
                translate = translator()
                assert [translate(t) for t in texts] == [str(t) for t in texts]
        with force_locale("zh_Hans_CN"):
            assert translator()(SOURCE_LABELS["provided"]) != "You gave it"
            assert translator()("plain") == "plain"


def test_form_messages_come_from_the_pages_catalogue_in_its_language(app, monkeypatch):
    """WTForms' own messages are in the page's catalogue (config `BABEL_DOMAIN`), read once
    per process, not once per request as Flask-WTF's own translations are."""
    from babel import support
    from flask_babel import force_locale

    from consent_center.web.member.forms import ProfileForm

    data = {"name": "x" * 101, "birth_date": "not a date"}

    def errors(locale):
        with app.test_request_context("/", method="POST", data=data), force_locale(locale):
            form = ProfileForm(meta={"csrf": False})
            form.validate()
            return form.errors

    errors("en"), errors("zh_Hans_CN")  # each language's catalogue loaded once
    loads = []
    original = support.Translations.load
    monkeypatch.setattr(
        support.Translations, "load",
        classmethod(lambda cls, *a, **k: loads.append(a) or original(*a, **k)),
    )
    english, chinese = errors("en"), errors("zh_Hans_CN")
    assert english == {
        "name": ["Field cannot be longer than 100 characters."],
        "birth_date": ["Not a valid date value."],
    }
    assert chinese["name"] == ["字段长度不能超过 100 个字符。"]
    assert chinese["birth_date"] == ["不是有效的日期值。"]
    assert loads == []
