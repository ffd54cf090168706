"""The soak's traffic, as Locust users (run by soak/load.py, headless).

Every request goes to one of the app instances at random, as a load balancer spreading
connections would, and carries what that balancer adds in front of a production site: the
client's address in X-Forwarded-For (one made-up address per simulated person, so per-address
limits count people, not the load generator), X-Forwarded-Proto https and the public host.
The balancer terminates TLS, so the session cookie (Secure in production) is sent to it: the
client treats these plain-HTTP hops as the HTTPS they stand for. Redirects are followed by
hand, each through the balancer again. Like nginx in front of an upstream by default, the
balancer opens a connection to the instance for each request (`Connection: close`): a kept-alive
connection that the instance closes for idling just as the balancer sends on it would be
a connection error of the balancer's making, which the real one avoids.

Configuration comes from the environment the harness sets: SOAK_HOSTS (comma-separated base
URLs), SOAK_CONTROL (the sinks' control API), SOAK_PUBLIC_HOST, SOAK_API_TOKEN,
SOAK_MEMBER_IDS (a file of member ids for API reads), SOAK_PHONES (numbers of seeded
members who sign in by SMS), SOAK_STAFF_EMAIL, SOAK_PUBLISH_AT
(epoch seconds at which staff publish the new policy version).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
import uuid
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import requests
from locust import HttpUser, between, events, task

HOSTS = [h for h in os.environ.get("SOAK_HOSTS", "http://127.0.0.1:8000").split(",") if h]
CONTROL = os.environ.get("SOAK_CONTROL", "http://127.0.0.1:0")
PUBLIC_HOST = os.environ.get("SOAK_PUBLIC_HOST", "consent.soak.test")
API_TOKEN = os.environ.get("SOAK_API_TOKEN", "")
STAFF_EMAIL = os.environ.get("SOAK_STAFF_EMAIL", "")
PUBLISH_AT = float(os.environ.get("SOAK_PUBLISH_AT", "0") or 0)
CODE_WAIT_SECONDS = float(os.environ.get("SOAK_CODE_WAIT", "150"))
_ids_file = os.environ.get("SOAK_MEMBER_IDS")
MEMBER_IDS = Path(_ids_file).read_text().split() if _ids_file else []
_phones_file = os.environ.get("SOAK_PHONES")
PHONES = Path(_phones_file).read_text().split() if _phones_file else []

CSRF = re.compile(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"')
PUBLIC_ID_IN_URL = re.compile(r"/staff/(?:policies|fan-outs?)/([A-Za-z0-9_-]{16,})")
OPTIONAL = ("trend_analysis", "advertising")
_control = requests.Session()


def _as_sent_to_balancer(jar) -> None:
    """The balancer terminates TLS: a Secure cookie reaches it, so these plain-HTTP hops
    behind it must carry the cookie too (requests would hold a Secure one back)."""
    for cookie in jar:
        cookie.secure = False


def _made_up_address() -> str:
    return f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _fire(name: str, started: float, ok: bool, error: str | None = None) -> None:
    """Record a measured step that is not one HTTP request (waiting for a code)."""
    events.request.fire(
        request_type="WAIT",
        name=name,
        response_time=(time.time() - started) * 1000,
        response_length=0,
        response=None,
        context={},
        exception=RuntimeError(error) if not ok else None,
        start_time=started,
        url="",
    )


class SoakUser(HttpUser):
    abstract = True
    host = HOSTS[0]
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.client.headers.update(
            {
                "X-Forwarded-For": _made_up_address(),
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": PUBLIC_HOST,
                "User-Agent": "soak/1 (locust)",
                "Connection": "close",
            }
        )
        self.csrf = None

    # -- one request, to one instance -------------------------------------------------

    def _url(self, path: str) -> str:
        return random.choice(HOSTS) + path

    def get(self, path: str, name: str, **kwargs):
        response = self.client.get(self._url(path), name=name, allow_redirects=False, **kwargs)
        return self._settle(response, name)

    def _settle(self, response, name: str):
        """Keep the cookie and the page's CSRF token; follow a redirect as a browser would,
        through the balancer (so to either instance)."""
        for _hop in range(5):
            _as_sent_to_balancer(self.client.cookies)
            self._remember_csrf(response)
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                break
            parts = urlsplit(location)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            response = self.client.get(
                self._url(path), name=f"{name} -> redirect", allow_redirects=False
            )
        return response

    def post(self, path: str, name: str, data=None, htmx: bool = False, **kwargs):
        headers = {"Referer": f"https://{PUBLIC_HOST}{path}"}
        data = dict(data or {})
        if htmx:
            headers.update({"HX-Request": "true", "X-CSRFToken": self.csrf or ""})
        else:
            data.setdefault("csrf_token", self.csrf or "")
        response = self.client.post(
            self._url(path),
            data=data,
            headers=headers,
            name=name,
            allow_redirects=False,
            **kwargs,
        )
        return self._settle(response, name)

    def _remember_csrf(self, response) -> None:
        if response.headers.get("Content-Type", "").startswith("text/html"):
            found = CSRF.search(response.text)
            if found:
                self.csrf = found.group(1)

    # -- codes ------------------------------------------------------------------------

    def read_code(self, to: str, since: float) -> str | None:
        """The code the SMTP server or the Twilio stand-in received for `to` after `since`
        (waits while it is delayed: during an outage the worker retries)."""
        while time.time() - since < CODE_WAIT_SECONDS:
            found = _control.get(
                f"{CONTROL}/code", params={"to": to, "since": since}, timeout=5
            ).json()
            if found.get("code"):
                _fire("code: asked to read", since, True)
                return found["code"]
            time.sleep(0.25)
        _fire("code: asked to read", since, False, "no code arrived")
        return None

    def enter_code(self, to: str, since: float) -> bool:
        code = self.read_code(to, since)
        if code is None:
            return False
        response = self.post("/sign-in/code", "sign-in: code", {"code": code})
        return response.ok and "/sign-in" not in response.url

    def sign_in(self, identifier: str) -> bool:
        self.get("/sign-in", "page: sign-in")
        since = time.time()
        self.post("/sign-in", "sign-in: ask", {"identifier": identifier})
        return self.enter_code(identifier, since)


class Member(SoakUser):
    """Registers, signs in with the emailed code, looks around and changes their mind."""

    weight = 6

    def on_start(self) -> None:
        super().on_start()
        self.email = f"m-{uuid.uuid4().hex[:12]}@live.example.com"
        self.state = {p: False for p in OPTIONAL}
        self.signed_in = False
        self.sign_ins = 0
        self.get("/register", "page: register")
        ticked = {p: "y" for p in OPTIONAL if random.random() < 0.3}
        since = time.time()
        response = self.post(
            "/register",
            "register",
            {
                "name": "Soak Live Member",
                "email": self.email,
                "birth_date": (
                    date(1970, 1, 1) + timedelta(days=random.randint(0, 12000))
                ).isoformat(),
                "locale": random.choice(("en", "zh_Hans_CN")),
                **ticked,
            },
        )
        if response.ok and self.enter_code(self.email, since):
            self.signed_in = True
            self.sign_ins += 1
            self.state.update({p: True for p in ticked})

    @task(4)
    def overview(self) -> None:
        if self.signed_in:
            self.get("/me", "page: /me")
        else:
            self.get("/", "page: home")

    def _toggle(self, htmx: bool) -> None:
        if not self.signed_in:
            return
        purpose = random.choice(OPTIONAL)
        granted = not self.state[purpose]
        response = self.post(
            f"/me/consents/{purpose}",
            "toggle: htmx" if htmx else "toggle: form",
            {"granted": "1" if granted else "0"},
            htmx=htmx,
        )
        if response.ok:
            self.state[purpose] = granted

    @task(3)
    def toggle_htmx(self) -> None:
        self._toggle(htmx=True)

    @task(2)
    def toggle_form(self) -> None:
        self._toggle(htmx=False)

    @task(1)
    def history(self) -> None:
        if self.signed_in:
            self.get("/me/history", "page: /me/history")

    @task(1)
    def sign_out_and_in(self) -> None:
        # At most three sign-ins a person: codes per address are limited (5 per 10 minutes).
        if not self.signed_in or self.sign_ins >= 3 or random.random() > 0.3:
            return
        self.post("/sign-out", "sign-out")
        self.signed_in = self.sign_in(self.email)
        self.sign_ins += 1


class TextingMember(Member):
    """A seeded member who signs in by SMS (the code goes through the Twilio stand-in),
    then does what every member does."""

    weight = 3

    def on_start(self) -> None:
        SoakUser.on_start(self)
        self.email = random.choice(PHONES) if PHONES else ""
        self.state = dict.fromkeys(OPTIONAL, False)  # the audience sample aside, all off
        self.sign_ins = 1
        self.signed_in = bool(self.email) and self.sign_in(self.email)
        if self.signed_in:
            page = self.get("/me", "page: /me")
            for purpose in OPTIONAL:  # read the switches' state from the page
                found = re.search(
                    rf'action="/me/consents/{purpose}".*?name="granted" value="([01])"',
                    page.text,
                    re.S,
                )
                if found:
                    self.state[purpose] = found.group(1) == "0"


class Visitor(SoakUser):
    """Reads the public pages."""

    weight = 2

    @task
    def pages(self) -> None:
        path = random.choice(("/", "/policy", "/contact", "/sign-in", "/register"))
        self.get(path, "page: public")


class ApiReader(SoakUser):
    """A downstream system: member reads, the change feed, and now and then an export."""

    fixed_count = 1
    wait_time = between(0.2, 0.6)

    def on_start(self) -> None:
        super().on_start()
        self.client.headers["Authorization"] = f"Bearer {API_TOKEN}"
        self.cursor = None

    @task(6)
    def member_consents(self) -> None:
        if MEMBER_IDS:
            member = random.choice(MEMBER_IDS)
            self.get(f"/api/v1/members/{member}/consents", "api: member consents")

    @task(3)
    def change_feed(self) -> None:
        path = "/api/v1/consent-events?limit=200"
        if self.cursor:
            path += f"&after={self.cursor}"
        response = self.get(path, "api: change feed")
        if response.ok:
            self.cursor = response.json().get("next_cursor") or self.cursor

    @task(1)
    def audience(self) -> None:
        purpose = random.choice(OPTIONAL)
        response = self.get(f"/api/v1/audiences/{purpose}", "api: audience export", stream=True)
        for _chunk in response.iter_content(65536):
            pass


class Staff(SoakUser):
    """Signs in, publishes a new policy version once (at SOAK_PUBLISH_AT) through the staff
    console, then follows the fan-out's progress."""

    fixed_count = 1
    wait_time = between(2.0, 4.0)

    def on_start(self) -> None:
        super().on_start()
        self.published = False
        self.progress_path = None
        self.signed_in = self.sign_in(STAFF_EMAIL)

    @task
    def work(self) -> None:
        if not self.signed_in:
            self.signed_in = self.sign_in(STAFF_EMAIL)
            return
        if not self.published and time.time() >= PUBLISH_AT:
            self.publish()
        elif self.progress_path:
            self.get(self.progress_path, "staff: fan-out progress")
        else:
            self.get("/staff", "staff: dashboard")

    def publish(self) -> None:
        page = self.get("/staff/policies/new", "staff: new draft")
        body = re.search(r"<textarea[^>]*name=\"body_md\"[^>]*>(.*?)</textarea>", page.text, re.S)
        text = _unescape(body.group(1)) if body else "Privacy policy"
        body_zh = re.search(
            r"<textarea[^>]*name=\"body_md_zh\"[^>]*>(.*?)</textarea>", page.text, re.S
        )
        text_zh = _unescape(body_zh.group(1)) if body_zh else "隐私政策"
        response = self.post(
            "/staff/policies/new",
            "staff: save draft",
            {
                "draft": "",
                "title": "Privacy policy",
                "body_md": text + "\n\nWe now tell you about changes by email and SMS.\n",
                "summary": "We now tell you about changes by email and SMS.",
                "title_zh": "隐私政策",
                "body_md_zh": text_zh + "\n\n我们现在通过电子邮件和短信告知您变更。\n",
                "summary_zh": "我们现在通过电子邮件和短信告知您变更。",
                "effective_on": (date.today() + timedelta(days=10)).isoformat(),
            },
        )
        found = PUBLIC_ID_IN_URL.search(response.url)
        if not response.ok or not found:
            return
        draft = found.group(1)
        self.get(f"/staff/policies/{draft}/publish", "staff: publish page")
        response = self.post(f"/staff/policies/{draft}/publish", "staff: publish", {"confirm": "y"})
        if response.ok:
            self.published = True
            self.progress_path = urlsplit(response.url).path
            events.request.fire(
                request_type="MARK",
                name="staff: published",
                response_time=0,
                response_length=0,
                response=None,
                context={"progress": self.progress_path},
                exception=None,
                start_time=time.time(),
                url=json.dumps({"draft": draft}),
            )


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)
