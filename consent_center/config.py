"""Configuration, read only from the environment (a `.env` file is loaded in development)."""

from __future__ import annotations

import math
import os
from collections import Counter
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from wtforms.i18n import messages_path

from .ledger_keys import parse_signing_key

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _htmx_version() -> str:
    """The vendored htmx version (static/vendor/htmx/VERSION, written by scripts/vendor.sh)."""
    path = PROJECT_ROOT / "static" / "vendor" / "htmx" / "VERSION"
    return path.read_text().strip() if path.exists() else "4.0.1"


DEFAULT_SECRET = "dev-only-insecure-secret-key"  # noqa: S105 - refused in production
# Development and tests key the ledger and sign its heads with these fixed values; production
# refuses them (`ProductionConfig.validate`).
DEV_LEDGER_KEY = "dev-only-insecure-ledger-key-0000"  # noqa: S105
DEV_LEDGER_SIGNING_KEY = "ZGV2LW9ubHktaW5zZWN1cmUtbGVkZ2VyLXNpZ25rZXk="  # base64 of 32 bytes


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _database_url(url: str | None) -> str:
    url = url or f"sqlite:///{PROJECT_ROOT / 'instance' / 'consent_center.db'}"
    # Heroku-style and bare postgres URLs: use psycopg 3 explicitly.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class BaseConfig:
    """Settings shared by every environment; each value comes from the environment."""

    ENV_NAME = "base"
    TESTING = False
    DEBUG = False

    def __init__(self) -> None:
        self.SECRET_KEY = _str("SECRET_KEY", DEFAULT_SECRET)
        self.SQLALCHEMY_DATABASE_URI = _database_url(_str("DATABASE_URL"))
        # Where read-only requests read (the read pool, `database.py`); None: DATABASE_URL.
        # A replica must apply each commit before it answers (invariant 4: every read
        # reflects the latest consent at once), e.g. synchronous_commit = remote_apply.
        read_url = _str("DATABASE_READ_URL")
        self.DATABASE_READ_URL = _database_url(read_url) if read_url else None
        # A ping before every checkout costs each request a round trip; without it, after a
        # database restart the first statement on each stale connection fails once and the
        # pool is refreshed. Turn it on where connections are often cut (some proxies do).
        self.SQLALCHEMY_ENGINE_OPTIONS = {
            "pool_pre_ping": _bool("DATABASE_POOL_PRE_PING", False),
            "pool_recycle": _int("DATABASE_POOL_RECYCLE_SECONDS", 1800),
        }
        self.PORT = _int("PORT", 5000)
        self.PUBLIC_BASE_URL = _str("PUBLIC_BASE_URL")
        # Behind N reverse proxies, trust N hops of X-Forwarded-* (client IP, scheme, host).
        self.PROXY_FIX_HOPS = _int("PROXY_FIX_HOPS", 0)

        # Sessions: the cookie holds only the member's id and the CSRF secret.
        self.SESSION_COOKIE_NAME = "cc_session"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
        self.REMEMBER_COOKIE_HTTPONLY = True
        self.PERMANENT_SESSION_LIFETIME = _int("SESSION_LIFETIME_SECONDS", 8 * 3600)
        # The page's token stays valid for the whole session; sign-in rotates it.
        self.WTF_CSRF_TIME_LIMIT = None

        # Mail: with no MAIL_SERVER, messages land in the dev mailbox instead.
        self.MAIL_SERVER = _str("MAIL_SERVER")
        self.MAIL_PORT = _int("MAIL_PORT", 25)
        self.MAIL_USERNAME = _str("MAIL_USERNAME")
        self.MAIL_PASSWORD = _str("MAIL_PASSWORD")
        self.MAIL_USE_TLS = _bool("MAIL_USE_TLS")
        self.MAIL_USE_SSL = _bool("MAIL_USE_SSL")
        self.MAIL_DEFAULT_SENDER = _str("MAIL_DEFAULT_SENDER", "Consent Center <privacy@localhost>")
        self.MAIL_TIMEOUT = _int("MAIL_TIMEOUT", 10)
        # A PEM file of the CA(s) to trust for the SMTP server's certificate instead of the
        # system's (a server with a private CA).
        self.MAIL_CA_FILE = _str("MAIL_CA_FILE")
        self.MAIL_SUPPRESS_SEND = False

        # SMS through Twilio; with no credentials, SMS lands in the dev mailbox too.
        self.TWILIO_ACCOUNT_SID = _str("TWILIO_ACCOUNT_SID")
        self.TWILIO_AUTH_TOKEN = _str("TWILIO_AUTH_TOKEN")
        self.TWILIO_FROM_NUMBER = _str("TWILIO_FROM_NUMBER")
        self.TWILIO_API_BASE_URL = _str("TWILIO_API_BASE_URL", "https://api.twilio.com")
        self.TWILIO_TIMEOUT = _int("TWILIO_TIMEOUT", 10)
        # Whether this site sends SMS at all. On (the default), production needs Twilio
        # credentials; off, no SMS is sent (SMS messages fail at once, never reach a mailbox).
        self.SMS_ENABLED = _bool("SMS_ENABLED", True)

        # The outbox: retries with exponential backoff, leases that survive a dead worker.
        self.NOTIFY_MAX_ATTEMPTS = _int("NOTIFY_MAX_ATTEMPTS", 8)
        self.NOTIFY_BACKOFF_BASE_SECONDS = _int("NOTIFY_BACKOFF_BASE_SECONDS", 30)
        self.NOTIFY_BACKOFF_MAX_SECONDS = _int("NOTIFY_BACKOFF_MAX_SECONDS", 3600)
        self.NOTIFY_LEASE_SECONDS = _int("NOTIFY_LEASE_SECONDS", 120)
        self.NOTIFY_BATCH_SIZE = _int("NOTIFY_BATCH_SIZE", 200)
        self.NOTIFY_POLL_SECONDS = float(_str("NOTIFY_POLL_SECONDS", "1.0"))
        # Where no NOTIFY wakes the worker (SQLite, or its LISTEN connection is down), it looks
        # this often for a code or link someone is waiting for (one indexed read).
        self.NOTIFY_SECRET_POLL_SECONDS = float(_str("NOTIFY_SECRET_POLL_SECONDS", "0.25"))
        self.UNSUBSCRIBABLE_KINDS = ("policy_notice",)

        self.RATELIMIT_STORAGE_URI = _str("RATELIMIT_STORAGE_URI", "memory://")
        # No X-RateLimit-* headers on every answer: reading the window's state for them
        # costs two more storage round trips per limited request. A 429 still says when to
        # come back (Retry-After, web/ratelimits.py).
        self.RATELIMIT_HEADERS_ENABLED = False
        self.RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)

        # The company, as the policy names it; shown on the contact page and in messages.
        self.COMPANY_NAME = _str("COMPANY_NAME", "AUTOOL")
        self.COMPANY_EMAIL = _str("COMPANY_EMAIL", "aftersale@autooltech.com")
        self.COMPANY_PHONE = _str("COMPANY_PHONE", "400-032-0988")
        self.COMPANY_ADDRESS = _str("COMPANY_ADDRESS", "")
        self.COMPANY_WECHAT = _str("COMPANY_WECHAT", "")
        self.COMPANY_FACEBOOK = _str("COMPANY_FACEBOOK", "")
        self.COMPANY_JURISDICTION = _str("COMPANY_JURISDICTION", "CN")

        self.MINOR_AGE = _int("MINOR_AGE", 14)
        # Advertising for minors stays barred unless this is switched on.
        self.GUARDIAN_RESEND_LIMIT = _str("GUARDIAN_RESEND_LIMIT", "3 per day")
        self.MINORS_ADVERTISING = _bool("MINORS_ADVERTISING", False)
        # A minor's account whose guardian never answers is erased after this many days.
        self.GUARDIAN_WAIT_DAYS = _int("GUARDIAN_WAIT_DAYS", 30)
        # "Email plus": a guardian's yes to advertising for a minor takes effect only once they
        # confirm through a second message sent this many hours later.
        self.GUARDIAN_CONFIRM_DELAY_HOURS = _int("GUARDIAN_CONFIRM_DELAY_HOURS", 24)
        self.DEFAULT_PHONE_REGION = _str("DEFAULT_PHONE_REGION", "CN")
        self.POLICY_NOTICE_DAYS = _int("POLICY_NOTICE_DAYS", 7)
        self.POLICY_PURPOSE_NOTICE_DAYS = _int("POLICY_PURPOSE_NOTICE_DAYS", 30)
        self.SIGN_IN_CODE_TTL_SECONDS = _int("SIGN_IN_CODE_TTL_SECONDS", 600)
        self.SIGN_IN_CODE_MAX_ATTEMPTS = _int("SIGN_IN_CODE_MAX_ATTEMPTS", 5)
        self.SIGN_IN_RATE_LIMIT_IP = _str("SIGN_IN_RATE_LIMIT_IP", "20 per 10 minutes")
        # Codes and links sent to one destination (a keyed digest of the normalized address
        # or number), whichever route sends them, and codes and links one member asks for.
        self.CODE_RATE_LIMIT_DESTINATION = _str(
            "CODE_RATE_LIMIT_DESTINATION",
            _str("SIGN_IN_RATE_LIMIT_IDENTIFIER", "5 per 10 minutes"),
        )
        self.CODE_RATE_LIMIT_MEMBER = _str("CODE_RATE_LIMIT_MEMBER", "5 per 10 minutes")
        # Wrong codes per account, across fresh codes: this many within the window locks the
        # account's codes for the window.
        self.CODE_LOCKOUT_FAILURES = _int("CODE_LOCKOUT_FAILURES", 10)
        self.CODE_LOCKOUT_WINDOW_SECONDS = _int("CODE_LOCKOUT_WINDOW_SECONDS", 3600)
        # SMS goes only to numbers in these countries (ISO 3166 codes, comma-separated).
        self.SMS_ALLOWED_COUNTRIES = tuple(
            c.strip().upper()
            for c in (_str("SMS_ALLOWED_COUNTRIES", "CN") or "").split(",")
            if c.strip()
        )
        # Text messages the whole site may send per hour (shared through RATELIMIT_STORAGE_URI).
        self.SMS_HOURLY_BUDGET = _int("SMS_HOURLY_BUDGET", 1000)

        self.DELETION_DUE_WORKING_DAYS = _int("DELETION_DUE_WORKING_DAYS", 15)
        # An account whose contact nobody verified is erased after this many days.
        self.UNVERIFIED_RETENTION_DAYS = _int("UNVERIFIED_RETENTION_DAYS", 7)
        # `flask retention run` (daily, also from the notify worker): a sent or given-up
        # message's text and address are deleted this many days after it was sent or written.
        self.OUTBOX_RETENTION_DAYS = _int("OUTBOX_RETENTION_DAYS", 90)
        # An erased member's consent ledger and audit chain are kept this many years after
        # the erasure (PIPL art. 56 asks for at least three), then deleted whole
        # (services/retention.py).
        self.LEDGER_RETENTION_YEARS = _int("LEDGER_RETENTION_YEARS", 3)
        self.CONTACT_RATE_LIMIT = _str("CONTACT_RATE_LIMIT", "5 per hour")
        # Contact form posts per typed email address: the acknowledgement goes there.
        self.CONTACT_RATE_LIMIT_ADDRESS = _str("CONTACT_RATE_LIMIT_ADDRESS", "3 per day")
        # Larger request bodies are refused with 413 before they are read.
        self.MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
        # The API for downstream systems (per token) and outgoing webhooks.
        self.API_RATE_LIMIT = _str("API_RATE_LIMIT", "600 per minute")
        # Refused tokens per client address: past it, the address gets 429s, right tokens too.
        self.API_AUTH_FAILURE_LIMIT = _str("API_AUTH_FAILURE_LIMIT", "30 per minute")
        # A gap in the change feed is re-checked this long (a transaction still committing).
        self.API_FEED_HOLE_SECONDS = _int("API_FEED_HOLE_SECONDS", 300)
        # How long an erasure notice names the former member number.
        self.API_ERASURE_NOTICE_DAYS = _int("API_ERASURE_NOTICE_DAYS", 30)
        self.WEBHOOK_TIMEOUT = _int("WEBHOOK_TIMEOUT", 10)
        # Receivers on loopback, private, link-local (cloud metadata), multicast or reserved
        # addresses are refused, when added and at every connection, unless this is on.
        self.WEBHOOK_ALLOW_PRIVATE = _bool("WEBHOOK_ALLOW_PRIVATE", False)
        # The consent ledger and the audit chains are HMAC-SHA256 under LEDGER_KEY, kept out
        # of the database so that writing the database is not enough to recompute a chain.
        # Each link stores the id of its key; retired keys stay listed in LEDGER_OLD_KEYS
        # ("id:key,id:key") so chains made under them still verify.
        self.LEDGER_KEY = _str("LEDGER_KEY", DEV_LEDGER_KEY)
        self.LEDGER_KEY_ID = _str("LEDGER_KEY_ID", "k1")
        self.LEDGER_OLD_KEYS = _str("LEDGER_OLD_KEYS", "")
        # Ed25519 private key (PEM, or base64 of the 32 raw bytes) signing `flask ledger heads`
        # and receipts; its public key is served at /.well-known/consent-ledger-key.
        self.LEDGER_SIGNING_KEY = _str("LEDGER_SIGNING_KEY", DEV_LEDGER_SIGNING_KEY)
        # Operations (docs/deploy.md): log lines as JSON objects ("json", production's
        # default) or readable text; Prometheus metrics of every process on this node,
        # counted in files under METRICS_DIR and served by `flask metrics serve` on
        # METRICS_BIND (loopback unless an operator opens it to the scraper's network).
        self.LOG_FORMAT = _str("LOG_FORMAT", "text")
        self.METRICS_DIR = _str("METRICS_DIR")
        self.METRICS_BIND = _str("METRICS_BIND", "127.0.0.1:9464")
        self.BABEL_DEFAULT_LOCALE = "en"
        # Dates and times are shown in this zone (stored in UTC).
        self.BABEL_DEFAULT_TIMEZONE = _str("DISPLAY_TIMEZONE", "Asia/Shanghai")
        self.HTMX_VERSION = _htmx_version()
        # One catalogue per language for every text on a page: WTForms' own messages ("This
        # field is required.") merged first, ours over them. Flask-Babel loads it once per
        # process; the forms take it from there (web/forms.py `AppForm`).
        self.BABEL_TRANSLATION_DIRECTORIES = f"{messages_path()};{PROJECT_ROOT / 'translations'}"
        self.BABEL_DOMAIN = "wtforms;messages"
        self.DEV_MAILBOX = False

    def validate(self) -> None:
        """Raise when the configuration is unsafe for this environment."""


class DevelopmentConfig(BaseConfig):
    ENV_NAME = "development"
    DEBUG = False  # the interactive debugger stays off; run with --debug to opt in

    def __init__(self) -> None:
        super().__init__()
        self.DEV_MAILBOX = True
        self.WEBHOOK_ALLOW_PRIVATE = _bool("WEBHOOK_ALLOW_PRIVATE", True)


class TestingConfig(BaseConfig):
    ENV_NAME = "testing"
    TESTING = True

    def __init__(self) -> None:
        super().__init__()
        self.SQLALCHEMY_DATABASE_URI = _database_url(
            _str("TEST_DATABASE_URL", "sqlite:///:memory:")
        )
        self.DATABASE_READ_URL = None  # the test database itself
        self.SECRET_KEY = "testing-secret-key"  # noqa: S105
        self.DEV_MAILBOX = True
        self.RATELIMIT_STORAGE_URI = "memory://"
        self.MAIL_SERVER = None
        self.TWILIO_ACCOUNT_SID = None
        self.TWILIO_AUTH_TOKEN = None
        self.PUBLIC_BASE_URL = "http://localhost"
        self.WEBHOOK_ALLOW_PRIVATE = True  # the tests' receivers listen on 127.0.0.1


class ProductionConfig(BaseConfig):
    """The default: refuses to start unless every setting a public site needs is there."""

    ENV_NAME = "production"

    def __init__(self) -> None:
        super().__init__()
        self.SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
        self.REMEMBER_COOKIE_SECURE = True
        self.LOG_FORMAT = _str("LOG_FORMAT", "json")
        # A database error's text names the statement, never its values (addresses, codes):
        # it may reach the logs.
        self.SQLALCHEMY_ENGINE_OPTIONS["hide_parameters"] = True

    def validate(self) -> None:
        problems = [p for p in self._problems() if p]
        if problems:
            raise RuntimeError(
                "Refusing to start in production (CONSENT_CENTER_ENV=production, the default): "
                + " ".join(problems)
            )

    def _problems(self) -> list[str | None]:
        base = self.PUBLIC_BASE_URL or ""
        storage = self.RATELIMIT_STORAGE_URI or ""
        return [
            weak_secret_problem(self.SECRET_KEY or ""),
            None
            if base.startswith("https://") and len(base) > len("https://")
            else "set PUBLIC_BASE_URL to the site's https:// origin.",
            None if self.MAIL_SERVER else "set MAIL_SERVER (the SMTP host that sends email).",
            None
            if not self.SMS_ENABLED
            or (self.TWILIO_ACCOUNT_SID and self.TWILIO_AUTH_TOKEN and self.TWILIO_FROM_NUMBER)
            else "set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER, "
            "or SMS_ENABLED=false for a site that sends no SMS.",
            None
            if storage.startswith(("redis://", "rediss://"))
            else "set RATELIMIT_STORAGE_URI to shared storage (redis:// or rediss://): "
            "memory:// counts per process, so limits would multiply by the workers.",
            None
            if not self.MAIL_USERNAME or self.MAIL_USE_TLS or self.MAIL_USE_SSL
            else "set MAIL_USE_TLS=true (STARTTLS) or MAIL_USE_SSL=true: MAIL_PASSWORD would "
            "otherwise cross the network in the clear.",
            ledger_key_problem(self.LEDGER_KEY or ""),
            signing_key_problem(self.LEDGER_SIGNING_KEY or ""),
            read_url_problem(self.SQLALCHEMY_DATABASE_URI, self.DATABASE_READ_URL),
            None
            if self.LEDGER_RETENTION_YEARS >= MIN_LEDGER_RETENTION_YEARS
            else f"set LEDGER_RETENTION_YEARS to at least {MIN_LEDGER_RETENTION_YEARS}: records "
            "of processing are kept at least three years (PIPL art. 56).",
        ]


# PIPL art. 56: records of processing are kept at least three years.
MIN_LEDGER_RETENTION_YEARS = 3

# The floor on a secret's characters: a random hex key scores about 3.5-4 bits each.
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS_PER_CHARACTER = 2.5


def weak_secret_problem(secret: str) -> str | None:
    """Why `secret` is unfit to sign sessions and key hashes, or None when it is fit: too
    short, the development default, too few different characters (Shannon entropy per
    character), a repeated pattern (`abcabc...`) or a run of neighbouring characters
    (`0123...`, `abcd...`)."""
    advice = (
        "set SECRET_KEY to a random value of at least 32 characters "
        "(python -c 'import secrets; print(secrets.token_hex(32))')"
    )
    if secret == DEFAULT_SECRET or len(secret) < MIN_SECRET_LENGTH:
        return advice + "."
    counts = Counter(secret)
    bits = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    periodic = any(
        all(secret[i] == secret[i - p] for i in range(p, len(secret)))
        for p in range(1, len(secret) // 2 + 1)
    )
    steps = sum(abs(ord(a) - ord(b)) <= 1 for a, b in zip(secret, secret[1:], strict=False))
    if bits < MIN_SECRET_BITS_PER_CHARACTER or periodic or steps >= 0.75 * (len(secret) - 1):
        return advice + "; this one is low in entropy (repeated or sequential characters)."
    return None


def read_url_problem(database_url: str, read_url: str | None) -> str | None:
    """A read pool exists only beside a PostgreSQL database, and reads PostgreSQL."""
    if read_url is None:
        return None
    if not (database_url.startswith("postgresql") and read_url.startswith("postgresql")):
        return (
            "DATABASE_READ_URL names a PostgreSQL replica of a PostgreSQL DATABASE_URL: "
            "unset it, or point both at PostgreSQL."
        )
    return None


def ledger_key_problem(key: str) -> str | None:
    """Why `key` cannot key the consent ledger in production, or None when it can."""
    if key == DEV_LEDGER_KEY or len(key) < MIN_SECRET_LENGTH:
        return (
            "set LEDGER_KEY to a random value of at least 32 characters, kept outside the "
            "database (it keys the consent ledger)."
        )
    return None


def signing_key_problem(key: str) -> str | None:
    """Why `key` cannot sign chain heads and receipts in production, or None when it can."""
    try:
        if key == DEV_LEDGER_SIGNING_KEY:
            raise ValueError("the development key")
        parse_signing_key(key)
    except (ValueError, TypeError, RuntimeError, UnsupportedAlgorithm):
        return (
            "set LEDGER_SIGNING_KEY to an Ed25519 private key, PEM or base64 of 32 bytes "
            "(see docs/ledger.md)."
        )
    return None


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def environment_name() -> str:
    """The environment `CONSENT_CENTER_ENV` names; production when it names none."""
    return os.environ.get("CONSENT_CENTER_ENV") or "production"


def load_config(name: str | None = None) -> BaseConfig:
    """Build the configuration named by `name` or `CONSENT_CENTER_ENV` (default production:
    a server started without any environment refuses to run, rather than run open)."""
    name = name or environment_name()
    try:
        config = CONFIGS[name]()
    except KeyError:
        raise RuntimeError(f"Unknown CONSENT_CENTER_ENV {name!r}; use {sorted(CONFIGS)}") from None
    config.validate()
    return config
