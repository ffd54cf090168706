"""Prove the test-support servers against the real client libraries.

``SmtpSink`` is exercised with ``smtplib`` and Flask-Mail 0.10.0 (inside a throwaway Flask
app); ``FakeTwilio`` with the real ``twilio`` SDK and its ``TwilioHttpClient``.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP

import pytest
import requests
from flask import Flask
from flask_mail import Mail, Message
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .fake_twilio import FakeTwilio, num_segments
from .smtp_server import SmtpSink

SENDER = "privacy@example.org"
MEMBER = "member@example.com"
OTHER = "other@example.com"
TO = "+15005550006"
FROM = "+15005550001"
CALLBACK = "https://consent.example.org/webhooks/twilio/status"

# --------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A running SMTP sink, stopped after the test."""
    with SmtpSink() as running:
        yield running


@pytest.fixture
def mail_app(sink: SmtpSink) -> tuple[Flask, Mail]:
    """A minimal Flask app whose Flask-Mail points at the sink."""
    app = Flask("mail_throwaway")
    app.config.update(
        TESTING=True,
        MAIL_SERVER=sink.host,
        MAIL_PORT=sink.port,
        MAIL_USE_TLS=False,
        MAIL_USE_SSL=False,
        MAIL_SUPPRESS_SEND=False,  # set explicitly: it defaults to app.testing
        MAIL_DEFAULT_SENDER=SENDER,
    )
    return app, Mail(app)


def _raw_mail(subject: str, to: str = MEMBER) -> bytes:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hello.\n")
    return msg.as_bytes(policy=SMTP)  # CRLF line endings, as on the wire


@pytest.fixture
def twilio_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove environment settings that would send SDK requests elsewhere."""
    for name in ("TWILIO_EDGE", "TWILIO_REGION", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def fake(twilio_env: None) -> Iterator[FakeTwilio]:
    """A running Twilio stand-in, stopped after the test."""
    with FakeTwilio() as running:
        yield running
    assert running.errors == []


ClientFactory = Callable[..., Client]


@pytest.fixture
def make_client(fake: FakeTwilio) -> Iterator[ClientFactory]:
    """Build real SDK clients aimed at the stand-in; their sessions are closed after."""
    http_clients: list[TwilioHttpClient] = []

    def factory(timeout: float = 2.0, auth_token: str | None = None) -> Client:
        http_client = TwilioHttpClient(timeout=timeout)
        http_clients.append(http_client)
        client = Client(fake.account_sid, auth_token or fake.auth_token, http_client=http_client)
        client.api.base_url = fake.base_url
        return client

    yield factory
    for http_client in http_clients:
        if http_client.session is not None:
            http_client.session.close()


@pytest.fixture
def client(make_client: ClientFactory) -> Client:
    """An SDK client with a 2 s timeout."""
    return make_client()


def _send(client: Client, **overrides: str) -> object:
    fields = {"to": TO, "from_": FROM, "body": "Your code is 123456", "status_callback": CALLBACK}
    fields.update(overrides)
    return client.messages.create(**fields)


# --------------------------------------------------------------------------------------
# SmtpSink


def test_smtplib_message_arrives_parsed(sink: SmtpSink) -> None:
    assert sink.running and sink.port > 0
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        refused = smtp.sendmail(SENDER, [MEMBER, OTHER], _raw_mail("Hello"))
    assert refused == {}

    [received] = sink.wait_for(1)
    assert received.mail_from == SENDER
    assert received.rcpt_tos == [MEMBER, OTHER]
    assert isinstance(received.data, bytes) and b"\r\nSubject: Hello\r\n" in received.data
    assert isinstance(received.message, EmailMessage)
    assert received.message["Subject"] == "Hello"
    assert received.message.get_content() == "Hello.\n"


def test_flask_mail_send_arrives(sink: SmtpSink, mail_app: tuple[Flask, Mail]) -> None:
    app, mail = mail_app
    with app.app_context():
        msg = Message(
            subject="Ihre Einwilligung – 同意已更新",
            recipients=[MEMBER],
            body="Sie können jederzeit widerrufen. 您可以随时撤回。",
            extra_headers={
                "List-Unsubscribe": "<https://consent.example.org/u/abc>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            },
        )
        msg.msgId = "<consent-1@consent.example.org>"
        mail.send(msg)

    [received] = sink.wait_for(1)
    parsed = received.message
    assert received.mail_from == SENDER and received.rcpt_tos == [MEMBER]
    assert parsed["Subject"] == "Ihre Einwilligung – 同意已更新"
    assert parsed["Message-ID"] == "<consent-1@consent.example.org>"
    assert parsed["List-Unsubscribe"] == "<https://consent.example.org/u/abc>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "您可以随时撤回" in parsed.get_body(("plain",)).get_content()


def test_flask_mail_batch_over_one_connection(sink: SmtpSink, mail_app: tuple[Flask, Mail]) -> None:
    app, mail = mail_app
    with app.app_context(), mail.connect() as conn:
        for i in range(3):
            conn.send(Message(subject=f"Notice {i}", recipients=[f"m{i}@example.com"], body="x"))

    received = sink.wait_for(3)
    assert [m.message["Subject"] for m in received] == ["Notice 0", "Notice 1", "Notice 2"]
    assert [m.rcpt_tos for m in received] == [[f"m{i}@example.com"] for i in range(3)]


def test_rejected_recipient_raises_recipients_refused(sink: SmtpSink) -> None:
    sink.reject_recipient(MEMBER.upper(), text="5.1.1 No such user")  # matched case-insensitively
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as excinfo:
            smtp.sendmail(SENDER, [MEMBER], _raw_mail("Hello"))
    assert excinfo.value.recipients == {MEMBER: (550, b"5.1.1 No such user")}
    assert sink.messages == []


def test_partial_refusal_is_only_reported_by_return_value(
    sink: SmtpSink, mail_app: tuple[Flask, Mail]
) -> None:
    sink.reject_recipient(OTHER, code=553)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        refused = smtp.sendmail(SENDER, [MEMBER, OTHER], _raw_mail("Hello"))
    assert refused == {OTHER: (553, b"5.1.1 Mailbox unavailable")}
    assert sink.wait_for(1)[0].rcpt_tos == [MEMBER]

    # Flask-Mail 0.10.0 drops sendmail's return value: a partial refusal passes silently.
    app, mail = mail_app
    with app.app_context():
        mail.send(Message(subject="Both", recipients=[MEMBER, OTHER], body="x"))
    assert sink.wait_for(2)[1].rcpt_tos == [MEMBER]

    sink.allow_recipient(OTHER)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        assert smtp.sendmail(SENDER, [OTHER], _raw_mail("Again", to=OTHER)) == {}


def test_fail_next_gives_data_error_then_recovers(sink: SmtpSink) -> None:
    sink.fail_next(2)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        for _ in range(2):
            with pytest.raises(smtplib.SMTPDataError) as excinfo:
                smtp.sendmail(SENDER, [MEMBER], _raw_mail("Try"))
            assert excinfo.value.smtp_code == 451
        assert sink.messages == []
        smtp.sendmail(SENDER, [MEMBER], _raw_mail("Third time"))  # same connection
    assert sink.wait_for(1)[0].message["Subject"] == "Third time"


def test_fail_next_with_flask_mail(sink: SmtpSink, mail_app: tuple[Flask, Mail]) -> None:
    sink.fail_next(1, code=452, text="4.3.1 Insufficient system storage")
    app, mail = mail_app
    with app.app_context():
        with pytest.raises(smtplib.SMTPDataError) as excinfo:
            mail.send(Message(subject="Hi", recipients=[MEMBER], body="x"))
        assert excinfo.value.smtp_code == 452
        mail.send(Message(subject="Retry", recipients=[MEMBER], body="x"))
    assert [m.message["Subject"] for m in sink.wait_for(1)] == ["Retry"]


def test_stop_then_start_on_the_same_port(sink: SmtpSink) -> None:
    sink.reject_recipient(OTHER)
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.sendmail(SENDER, [MEMBER], _raw_mail("Before"))
    port = sink.port

    sink.stop()
    assert not sink.running
    with pytest.raises(ConnectionRefusedError):
        smtplib.SMTP(sink.host, port, timeout=2)
    sink.stop()  # idempotent

    sink.start()
    assert sink.running and sink.port == port
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.sendmail(SENDER, [MEMBER], _raw_mail("After"))
        with pytest.raises(smtplib.SMTPRecipientsRefused):  # faults survive the restart
            smtp.sendmail(SENDER, [OTHER], _raw_mail("Refused"))
    assert [m.message["Subject"] for m in sink.wait_for(2)] == ["Before", "After"]


def test_stop_drops_open_connections(sink: SmtpSink) -> None:
    smtp = smtplib.SMTP(sink.host, sink.port, timeout=5)
    try:
        assert smtp.ehlo()[0] == 250
        sink.stop()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            smtp.sendmail(SENDER, [MEMBER], _raw_mail("Lost"))
    finally:
        smtp.close()
    assert sink.messages == []


def test_wait_for_wakes_up_and_times_out(sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="expected 1 message"):
        sink.wait_for(1, timeout=0.05)

    def send_later() -> None:
        time.sleep(0.1)
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.sendmail(SENDER, [MEMBER], _raw_mail("Later"))

    sender = threading.Thread(target=send_later)
    sender.start()
    try:
        assert sink.wait_for(1, timeout=5)[0].message["Subject"] == "Later"
    finally:
        sender.join()


def test_clear_resets_messages_and_faults(sink: SmtpSink) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.sendmail(SENDER, [MEMBER], _raw_mail("One"))
    sink.wait_for(1)
    sink.reject_recipient(MEMBER)
    sink.fail_next(3)
    sink.clear()
    assert sink.messages == []
    with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
        smtp.sendmail(SENDER, [MEMBER], _raw_mail("Two"))
    assert len(sink.wait_for(1)) == 1


def test_sink_lifecycle_and_argument_checks() -> None:
    first, second = SmtpSink(), SmtpSink()
    assert not first.running and first.port == 0
    with first, second:
        assert first.running and first.port != second.port
        with pytest.raises(RuntimeError, match="already running"):
            first.start()
    assert not first.running and not second.running

    with pytest.raises(ValueError):
        first.reject_recipient(MEMBER, code=250)
    with pytest.raises(ValueError):
        first.fail_next(1, code=354)
    with pytest.raises(ValueError):
        first.fail_next(-1)


# --------------------------------------------------------------------------------------
# FakeTwilio with the real SDK


def test_sdk_sends_through_base_url(fake: FakeTwilio, client: Client) -> None:
    message = _send(client)

    assert message.sid is not None and message.sid.startswith("SM") and len(message.sid) == 34
    int(message.sid[2:], 16)  # 32 hex digits
    assert (message.status, message.to, message.from_) == ("queued", TO, FROM)
    assert message.account_sid == fake.account_sid
    assert message.num_segments == "1"
    assert message.date_created is not None

    [recorded] = fake.wait_for(1)
    assert recorded["sid"] == message.sid
    assert recorded["to"] == TO
    assert recorded["from_"] == FROM
    assert recorded["body"] == "Your code is 123456"
    assert recorded["status_callback"] == CALLBACK
    assert recorded["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert recorded["headers"]["User-Agent"].startswith("twilio-python/9.")
    [request] = fake.requests
    assert request["method"] == "POST"
    assert request["path"] == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert request["status"] == 201


def test_sdk_fetches_a_sent_message(fake: FakeTwilio, client: Client) -> None:
    sent = _send(client, body="€" * 161)  # GSM extension char: 2 septets each
    assert sent.num_segments == "3"
    fetched = client.messages(sent.sid).fetch()
    assert (fetched.sid, fetched.status, fetched.body) == (sent.sid, "queued", "€" * 161)

    with pytest.raises(TwilioRestException) as excinfo:
        client.messages("SM" + "0" * 32).fetch()
    assert (excinfo.value.status, excinfo.value.code) == (404, 20404)


def test_messaging_service_and_validation(fake: FakeTwilio, client: Client) -> None:
    message = client.messages.create(to=TO, messaging_service_sid="MG" + "1" * 32, body="Hi")
    assert message.status == "accepted"
    assert fake.messages[0]["messaging_service_sid"] == "MG" + "1" * 32

    with pytest.raises(TwilioRestException) as excinfo:
        client.messages.create(to=TO, from_=FROM)
    assert (excinfo.value.status, excinfo.value.code) == (400, 21602)
    assert len(fake.messages) == 1


def test_wrong_auth_token_is_401(fake: FakeTwilio, make_client: ClientFactory) -> None:
    fake.fail_next(500)  # not consumed by the unauthenticated request
    with pytest.raises(TwilioRestException) as excinfo:
        _send(make_client(auth_token="wrong"))
    assert (excinfo.value.status, excinfo.value.code) == (401, 20003)
    assert fake.messages == [] and fake.pending_scripts == 1


@pytest.mark.parametrize(
    ("status", "code", "expected_code"),
    [
        (429, 20429, 20429),  # rate limited: retry later
        (500, None, 20500),  # server error: retry later
        (503, None, 20503),
        (400, 21211, 21211),  # invalid To: permanent
        (400, 21610, 21610),  # recipient replied STOP: permanent, record the opt-out
        (400, 21614, 21614),  # not a mobile number: permanent
    ],
)
def test_scripted_failures_raise_twilio_rest_exception(
    fake: FakeTwilio, client: Client, status: int, code: int | None, expected_code: int
) -> None:
    fake.fail_next(status=status, code=code)
    with pytest.raises(TwilioException) as excinfo:
        _send(client)
    error = excinfo.value
    assert type(error) is TwilioRestException
    assert (error.status, error.code) == (status, expected_code)
    assert fake.messages == []

    _send(client)  # the script is used up: the next request succeeds
    assert len(fake.messages) == 1
    assert [r["status"] for r in fake.requests] == [status, 201]


def test_failure_queue_and_error_body_shape(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(429, times=2)
    fake.fail_next(400, 21211, "The 'To' number +1555 is not a valid phone number.")
    codes = []
    for _ in range(3):
        with pytest.raises(TwilioRestException) as excinfo:
            _send(client)
        codes.append(excinfo.value.code)
    assert codes == [20429, 20429, 21211]
    assert "is not a valid phone number" in excinfo.value.msg
    assert fake.pending_scripts == 0
    _send(client)

    fake.fail_next(429, retry_after=3)
    url = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    with requests.Session() as session:
        response = session.post(
            url, data={"To": TO, "From": FROM, "Body": "x"}, auth=(fake.account_sid, "t")
        )
        assert response.status_code == 401 and "WWW-Authenticate" in response.headers
        response = session.post(
            url,
            data={"To": TO, "From": FROM, "Body": "x"},
            auth=(fake.account_sid, fake.auth_token),
        )
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    }


def test_problem_details_raise_twilio_service_exception(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(429, problem_details=True)
    with pytest.raises(TwilioException) as excinfo:
        _send(client)
    error = excinfo.value
    assert isinstance(error, TwilioServiceException)
    assert not isinstance(error, TwilioRestException)
    assert (error.status, error.code) == (429, 20429)


def test_hang_triggers_client_timeout(fake: FakeTwilio, make_client: ClientFactory) -> None:
    client = make_client(timeout=1)
    fake.hang_next(3)
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout) as excinfo:
        _send(client)
    # The client gave up (a read timeout, not an answer) and not before its timeout: a lower
    # bound only, which a loaded machine cannot break.
    assert type(excinfo.value) is requests.exceptions.ReadTimeout
    assert not isinstance(excinfo.value, TwilioException)  # not caught by `except Twilio...`
    assert time.monotonic() - started >= 0.9

    # Like the real service, the request still went through after the client gave up.
    [recorded] = fake.wait_for(1, timeout=5)
    assert recorded["to"] == TO


def test_short_hang_then_answer(fake: FakeTwilio, client: Client) -> None:
    fake.hang_next(0.2, status=500)
    started = time.monotonic()
    with pytest.raises(TwilioRestException) as excinfo:
        _send(client)
    assert time.monotonic() - started >= 0.2
    assert (excinfo.value.status, excinfo.value.code) == (500, 20500)


def test_stop_cuts_a_hang_short(twilio_env: None) -> None:
    fake = FakeTwilio()
    fake.start()
    http_client = TwilioHttpClient(timeout=25)
    client = Client(fake.account_sid, fake.auth_token, http_client=http_client)
    client.api.base_url = fake.base_url
    # Longer than the client's timeout: had stop() waited for the hang, the client would
    # have timed out (ReadTimeout) instead of seeing its connection closed.
    fake.hang_next(30)
    outcome: list[Exception] = []

    def send() -> None:
        try:
            _send(client)
        except Exception as exc:  # handed to the main thread
            outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    try:
        fake.wait_for_scripts(timeout=5)  # the request has taken the hang
        fake.stop()
    finally:
        sender.join(30)
        http_client.session.close()
    assert not sender.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], requests.exceptions.ConnectionError)
    assert fake.messages == []


def test_drop_next_gives_connection_error(fake: FakeTwilio, client: Client) -> None:
    fake.drop_next()
    with pytest.raises(requests.exceptions.ConnectionError):
        _send(client)
    assert fake.messages == [] and fake.requests[0]["status"] is None
    _send(client)


def test_fake_restarts_on_the_same_port(fake: FakeTwilio, client: Client) -> None:
    port = fake.port
    fake.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        _send(client)
    fake.start()
    assert fake.port == port
    _send(client)
    assert len(fake.wait_for(1)) == 1


def test_clear_and_wait_for_timeout(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(500)
    fake.clear()
    assert fake.pending_scripts == 0
    _send(client)
    fake.clear()
    assert fake.messages == [] and fake.requests == []
    with pytest.raises(TimeoutError, match="expected 1 message"):
        fake.wait_for(1, timeout=0.05)
    with pytest.raises(ValueError):
        fake.fail_next(200)
    with pytest.raises(ValueError):
        fake.hang_next(-1)


def test_edge_and_region_env_vars_garble_local_urls(
    fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"{fake.base_url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    clean = Client(fake.account_sid, fake.auth_token)
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    garbled = Client(fake.account_sid, fake.auth_token)
    # An empty `environment` mapping is falsy: the SDK falls back to os.environ.
    not_isolated = Client(fake.account_sid, fake.auth_token, environment={})
    try:
        assert clean.get_hostname(url) == url
        assert garbled.get_hostname(url) != url
        assert not_isolated.edge == "sydney"
    finally:
        for created in (clean, garbled, not_isolated):
            assert isinstance(created.http_client, TwilioHttpClient)
            if created.http_client.session is not None:
                created.http_client.session.close()


def test_num_segments() -> None:
    assert num_segments("") == 1
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("a" * 306) == 2
    assert num_segments("[" * 80) == 1
    assert num_segments("[" * 81) == 2
    assert num_segments("验" * 70) == 1
    assert num_segments("验" * 71) == 2
    assert num_segments("😀" * 35) == 1  # two UTF-16 code units each
