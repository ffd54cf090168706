"""Browser tests: a live server per database, system Chromium through Playwright, and axe-core
on every page a test visits.

Every page a test opens is watched: a console error, an uncaught exception, a CSP violation
(Chromium reports those as console errors), a request to another origin, or a page (or htmx
swap) left without an axe check fails the test once its body has run.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Frame,
    Page,
    Request,
    Response,
    sync_playwright,
)
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect as pw_expect
from sqlalchemy import select
from sqlalchemy.engine import make_url
from werkzeug.serving import BaseWSGIServer, make_server

from consent_center import create_app
from consent_center.cli import DEMO_MEMBER_EMAIL, seed_demo
from consent_center.extensions import db
from consent_center.models import Member
from consent_center.notify.worker import drain
from tests.support.databases import (
    BACKENDS,
    DEFAULT_PG,
    empty_tables,
    migrate_fresh,
    url_for_backend,
)

# docs/screenshots are tracked files: only `make screenshots` (UPDATE_SCREENSHOTS=1) rewrites
# them, so a test run never changes the tree.
collect_ignore = [] if os.environ.get("UPDATE_SCREENSHOTS") == "1" else ["test_screenshots.py"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
AXE_SOURCE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text(encoding="utf-8")
VIEWPORT = {"width": 1280, "height": 800}
# Playwright's own default is 30 s; a local server answers in milliseconds.
TIMEOUT_MS = 5_000
SIGN_IN_CODE = re.compile(r"(?<![\d-])(\d{6})(?![\d-])")

pw_expect.set_options(timeout=TIMEOUT_MS)


# --------------------------------------------------------------------------------------
# the live server


@dataclass
class LiveServer:
    """The app served over real HTTP on 127.0.0.1, with its dev mailbox folder."""

    backend: str
    url: str
    app: Flask
    mailbox: Path
    # Whatever a module built on top of the seed (tests/browser/test_pages.py); a reset drops it.
    world: object | None = None

    def reset(self) -> None:
        """Empty every table, seed the policy and demo users again, empty the mailbox."""
        self.world = None
        empty_tables(self.app)
        with self.app.app_context():
            seed_demo()
            db.session.remove()
        for path in self.mailbox.glob("*.json"):
            path.unlink()

    def deliver(self) -> None:
        """One round of the outbox worker (codes and links are sent by it, not the request)."""
        self.query(drain)

    def messages(self, to: str, kind: str | None = None) -> list[dict]:
        """Messages sent to `to` (optionally of one kind), newest first, once delivered."""
        self.deliver()
        found = []
        for path in sorted(self.mailbox.glob("*.json"), reverse=True):
            message = json.loads(path.read_text(encoding="utf-8"))
            if message["to"] == to and (kind is None or message["kind"] == kind):
                found.append(message)
        return found

    def sign_in_code(self, to: str) -> str:
        """The code in the newest sign-in message sent to `to`."""
        messages = self.messages(to, kind="sign_in_code")
        assert messages, f"no sign-in code was sent to {to}"
        # "Your sign-in code is: 123456" in English; match the digits in any language.
        match = SIGN_IN_CODE.search(messages[0]["text"])
        assert match, f"no 6-digit code in: {messages[0]['text']!r}"
        return match.group(1)

    def session_cookie(self, email: str | None = None, **values) -> dict:
        """A session cookie (for `context.add_cookies`): signed in as the member with `email`
        (a server-side session, as a real sign-in makes) or anonymous, holding `values`.

        A shortcut for tests about what comes after: the code flow itself is driven through
        the browser in test_member_journey.py.
        """

        def open_one() -> str | None:
            from consent_center.services.sessions import open_session

            member = db.session.scalars(select(Member).where(Member.email == email)).first()
            if member is None:
                return None
            key = open_session(member)
            db.session.commit()
            return key

        client = self.app.test_client()
        with client.session_transaction() as session:
            if email is not None:
                key = self.query(open_one)
                assert key, f"no member {email}"
                session["_user_id"] = key
                session["_fresh"] = True
            session.update(values)
        cookie = client.get_cookie(self.app.config["SESSION_COOKIE_NAME"])
        return {"name": cookie.key, "value": cookie.value, "url": self.url}

    def query(self, fn: Callable[[], object]) -> object:
        """Run `fn` inside an app context (to look at the database) and return its result."""
        with self.app.app_context():
            try:
                return fn()
            finally:
                db.session.remove()


def browser_database_url(backend: str, folder: Path) -> str:
    """`url_for_backend`, but a PostgreSQL database of the browser tests' own.

    The unit tests' session app holds the shared per-worker database, and any other pytest
    run without xdist (suffix "main") drops its schema; the live server serves requests
    from another thread while a test runs, so it must not share it.
    """
    if backend != "postgresql":
        return url_for_backend(backend, folder)
    base = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_PG)
    own = base.set(database=f"{base.database}_browser").render_as_string(hide_password=False)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_DATABASE_URL", own)
        return url_for_backend(backend, folder)


def _not_ready(environ, start_response):  # replaced by the app before serving starts
    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
    return [b"starting"]


@pytest.fixture(scope="session", params=BACKENDS)
def _live_server(request, tmp_path_factory) -> Iterator[LiveServer]:
    """One server per database backend for the whole session (schema made by migrations)."""
    backend = request.param
    folder = tmp_path_factory.mktemp(f"browser-{backend}")
    # Bind first so the app can be told its own public URL.
    server: BaseWSGIServer = make_server("127.0.0.1", 0, _not_ready, threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        app = create_app(
            "testing",
            SQLALCHEMY_DATABASE_URI=browser_database_url(backend, folder),
            DEV_MAILBOX_DIR=str(folder / "mailbox"),
            PUBLIC_BASE_URL=url,
            WTF_CSRF_ENABLED=True,
            RATELIMIT_ENABLED=False,
        )
        migrate_fresh(app)
        live = LiveServer(backend=backend, url=url, app=app, mailbox=folder / "mailbox")
        live.mailbox.mkdir(exist_ok=True)
        server.app = app
        thread = threading.Thread(target=server.serve_forever, name=f"live-{backend}", daemon=True)
        thread.start()
        try:
            yield live
        finally:
            server.shutdown()
            thread.join(timeout=10)
            with app.app_context():
                db.engine.dispose()
    finally:
        server.server_close()


@pytest.fixture
def live_server(_live_server: LiveServer) -> LiveServer:
    """The live server with a freshly emptied and seeded database, for one test."""
    _live_server.reset()
    return _live_server


# --------------------------------------------------------------------------------------
# the browser


@pytest.fixture(scope="session")
def chromium():
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `make browser-deps` (make test does)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


class PageProblems(AssertionError):
    """Console errors, CSP violations, uncaught exceptions or unaudited pages in a test."""


@dataclass
class PageWatch:
    """What happened on one page: errors, navigations, and whether axe saw the latest DOM."""

    page: Page
    origin: str
    js: bool
    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)
    unaudited: list[str] = field(default_factory=list)
    current: str | None = None  # what the page shows now, if axe has not checked it yet
    _htmx_get: str | None = None  # the address of the latest htmx GET, until a navigation
    _navigated_to: str | None = None  # the address of the latest navigation, until htmx asks
    _address: str | None = None  # the address shown now
    _loading: bool = False  # a document was requested since the last navigation

    def attach(self) -> None:
        self.page.on("console", self._on_console)
        self.page.on("pageerror", self._on_page_error)
        self.page.on("framenavigated", self._on_navigated)
        self.page.on("request", self._on_request)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        text = f"console error: {message.text} (at {where or self.page.url})"
        if not any(p.search(text) for p in self.allowed):
            self.errors.append(text)

    def _on_page_error(self, error: PlaywrightError) -> None:
        self.errors.append(f"uncaught exception on {self.page.url}: {error}")

    def _on_navigated(self, frame: Frame) -> None:
        if frame is not self.page.main_frame or frame.url == "about:blank":
            return
        here, before = _address(frame.url), self._address
        self._address = here
        loaded, self._loading = self._loading, False
        if not loaded and here == before:
            return  # history.replaceState of the same address (htmx marks its entries)
        # htmx pushing the address it just fetched (hx-push-url) is part of that one change.
        pushed = self._htmx_get is not None and here == self._htmx_get
        self._mark_changed(f"page {frame.url}", merge=pushed)
        self._htmx_get, self._navigated_to = None, here

    def _on_request(self, request: Request) -> None:
        url = request.url
        if not url.startswith(self.origin + "/") and not url.startswith("data:"):
            self.errors.append(f"request to another origin: {request.method} {url}")
        if request.is_navigation_request() and request.frame == self.page.main_frame:
            self._loading = True  # a new document, not a change of address within one
        if request.headers.get("hx-request") == "true":
            # The back button under htmx history: the address changes, then htmx fetches
            # that page again; one change.
            restore = (
                request.headers.get("hx-history-restore-request") == "true"
                and _address(url) == self._navigated_to
            )
            self._mark_changed(
                f"htmx {request.method} {urlsplit(url).path} on {self.page.url}", merge=restore
            )
            self._htmx_get = _address(url) if request.method == "GET" else None
            self._navigated_to = None

    def _mark_changed(self, label: str, merge: bool = False) -> None:
        if self.current is not None and not merge:
            self.unaudited.append(self.current)
        self.current = label

    def problems(self) -> list[str]:
        left = self.unaudited + ([self.current] if self.current else [])
        return self.errors + [f"no axe check of: {what}" for what in left]


class Browsing:
    """The pages of one test, their contexts, and the helpers that visit and audit them."""

    def __init__(self, browser, server: LiveServer) -> None:
        self.browser = browser
        self.server = server
        self.contexts: list[BrowserContext] = []
        self.watches: dict[int, PageWatch] = {}
        self._auditor: Page | None = None
        self._snapshot = ""

    def new_page(self, js: bool = True, **options) -> Page:
        """A page in a new context (own cookies), with JavaScript on or off."""
        options = {"viewport": VIEWPORT, "locale": "en-US", **options}
        context = self.browser.new_context(
            base_url=self.server.url, java_script_enabled=js, **options
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        watch = PageWatch(page=page, origin=self.server.url, js=js)
        watch.attach()
        self.watches[id(page)] = watch
        return page

    def watch(self, page: Page) -> PageWatch:
        return self.watches[id(page)]

    def visit(self, page: Page, path: str, status: int = 200) -> Response:
        """Open `path`, check the status, and run axe on the page."""
        response = page.goto(path)
        assert response is not None, f"no response for {path}"
        assert response.status == status, f"GET {path}: {response.status}, wanted {status}"
        self.axe_check(page)
        return response

    def allow_console_error(self, page: Page, pattern: str) -> None:
        """Let one expected console error through (e.g. the 422 of a rejected form)."""
        self.watch(page).allowed.append(re.compile(pattern))

    def axe_check(self, page: Page, within: list[str] | None = None):
        """Run axe-core on what the page shows now; fail listing every violation.

        `within`: CSS selectors of the parts that changed (after an htmx swap, the swapped
        element and the live region); the rest was checked when the page loaded. Rules about
        the whole document (such as duplicate ids) still look at all of it.
        """
        watch = self.watch(page)
        if watch.js:
            target = page
        else:
            # Timers never fire with JavaScript off, and axe needs them: audit an exact copy
            # of the page (same DOM, same stylesheet) in a tab with JavaScript on.
            target = self._audit_copy(page)
        # CSP (script-src 'self') forbids injected <script> tags; evaluating is allowed.
        target.evaluate(AXE_SOURCE + "; 0")
        result = target.evaluate(
            """async (within) => await axe.run(
                within ? {include: within.map(s => [s])} : document,
                {resultTypes: ['violations']})""",
            within,
        )
        watch.current = None
        if within is None:
            # The whole document as it is now: every earlier change on this address (a page
            # that polls itself may swap before the first check of it) ends here.
            watch.unaudited = [
                label
                for label in watch.unaudited
                if label != f"page {page.url}" and not label.endswith(f" on {page.url}")
            ]
        violations = result["violations"]
        if violations:
            raise AssertionError(f"axe on {page.url}:\n" + format_violations(violations))

    def _audit_copy(self, page: Page) -> Page:
        self._snapshot = page.content()
        if self._auditor is None:
            context = self.browser.new_context(base_url=self.server.url, viewport=VIEWPORT)
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", self._serve_copy)
            self.contexts.append(context)
            self._auditor = context.new_page()
        self._auditor.set_viewport_size(page.viewport_size or VIEWPORT)
        # Without the fragment, so that this is always a new document, never a scroll.
        self._auditor.goto(page.url.split("#", 1)[0])
        return self._auditor

    def _serve_copy(self, route) -> None:
        kind = route.request.resource_type
        if kind == "document":
            route.fulfill(status=200, content_type="text/html; charset=utf-8", body=self._snapshot)
        elif kind == "script":  # the copy must stay as it was without JavaScript
            route.fulfill(status=200, content_type="text/javascript", body="")
        else:
            route.continue_()

    def close(self) -> None:
        for context in self.contexts:
            context.close()

    def problems(self) -> list[str]:
        return [p for w in self.watches.values() for p in w.problems()]


def _address(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def format_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"][:10]:
            lines.append(f"    {' '.join(map(str, node['target']))}: {node['html'][:160]}")
    return "\n".join(lines)


BROWSING = pytest.StashKey[Browsing]()


@pytest.fixture
def browsing(request, chromium, live_server: LiveServer) -> Iterator[Browsing]:
    browsing = Browsing(chromium, live_server)
    request.node.stash[BROWSING] = browsing
    try:
        yield browsing
    finally:
        browsing.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After a passing test body, fail it for console errors or pages axe never checked."""
    result = yield
    browsing = item.stash.get(BROWSING, None)
    if browsing is not None and (problems := browsing.problems()):
        raise PageProblems("\n".join(problems))
    return result


@pytest.fixture
def page(browsing: Browsing) -> Page:
    """A page with JavaScript on."""
    return browsing.new_page(js=True)


@pytest.fixture
def nojs_page(browsing: Browsing) -> Page:
    """A page with JavaScript off (`java_script_enabled=False`)."""
    return browsing.new_page(js=False)


@pytest.fixture
def visit(browsing: Browsing) -> Callable[..., Response]:
    """`visit(page, path, status=200)`: open a page and run axe on it."""
    return browsing.visit


@pytest.fixture
def axe_check(browsing: Browsing) -> Callable[..., None]:
    """`axe_check(page, within=None)`: run axe on what the page shows now
    (after a click or an htmx swap)."""
    return browsing.axe_check


@pytest.fixture
def allow_console_error(browsing: Browsing) -> Callable[[Page, str], None]:
    """`allow_console_error(page, regex)`: expect one kind of console error on this page.

    Chromium logs every 4xx page as "Failed to load resource", so a test that expects a 422
    says so: `allow_console_error(page, r"status of 422 ")`.
    """
    return browsing.allow_console_error


@pytest.fixture
def sign_in(browsing: Browsing, live_server: LiveServer) -> Callable[..., None]:
    """`sign_in(page, email=demo member)`: a signed-in session (`LiveServer.session_cookie`),
    then /me."""

    def sign_in(page: Page, email: str = DEMO_MEMBER_EMAIL) -> None:
        page.context.add_cookies([live_server.session_cookie(email)])
        browsing.visit(page, "/me")

    return sign_in


class DeliveringSink:
    """The SMTP sink, whose `messages` are read after one worker round on the live server."""

    def __init__(self, sink, live: LiveServer) -> None:
        self._sink, self._live = sink, live

    @property
    def messages(self):
        self._live.deliver()
        return self._sink.messages

    def __getattr__(self, name: str):
        return getattr(self._sink, name)


@pytest.fixture
def live_smtp(live_server, _smtp_sink):
    """Email from the live server goes over real SMTP to the test's server, for one test."""
    _smtp_sink.clear()
    if not _smtp_sink.running:
        _smtp_sink.start()
    config = live_server.app.config
    saved = {k: config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_TIMEOUT")}
    config.update(MAIL_SERVER=_smtp_sink.host, MAIL_PORT=_smtp_sink.port, MAIL_TIMEOUT=5)
    try:
        yield DeliveringSink(_smtp_sink, live_server)
    finally:
        config.update(saved)
        _smtp_sink.clear()
