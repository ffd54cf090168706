"""Policy versions: immutable once published; the current one is computed from dates.

Each version has its words in English and in Simplified Chinese (title, text, summary).
Publishing needs both; versions published before Chinese was required have only English."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..domain import LOCALE_HTML_LANG, Locale
from ..extensions import db
from .types import UTCDateTime, new_public_id

# The columns holding each language's words: (title, text, summary).
TEXT_COLUMNS = {
    Locale.EN: ("title", "body_md", "summary"),
    Locale.ZH: ("title_zh", "body_md_zh", "summary_zh"),
}


@dataclass(frozen=True)
class PolicyText:
    """A version's words in one language. Pages put `lang` on them (WCAG 3.1.2), since a
    reader may be shown words of another language than the page's."""

    locale: str
    title: str = ""
    body_md: str = ""
    summary: str = ""

    @property
    def lang(self) -> str:
        return LOCALE_HTML_LANG[self.locale]

    @property
    def missing(self) -> tuple[str, ...]:
        """The names of the parts left empty (`title`, `body_md`, `summary`)."""
        return tuple(
            name for name in ("title", "body_md", "summary") if not getattr(self, name).strip()
        )


def for_reader(locale: str, texts: dict[str, PolicyText]) -> PolicyText:
    """The words a reader of `locale` gets: their language's when there are any, English
    otherwise (versions published before Chinese was required have none)."""
    chosen = texts.get(locale)
    if chosen is not None and len(chosen.missing) < 3:
        return chosen
    return texts[Locale.EN]


class PolicyVersion(db.Model):
    __tablename__ = "policy_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Staff URLs name a version (drafts included) by this random handle.
    public_id: Mapped[str] = mapped_column(String(32), unique=True, default=new_public_id)
    # Given at publication; a draft (published_at NULL) has none yet.
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body_md: Mapped[str] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    # The Simplified Chinese words; empty on a draft not yet translated and on versions
    # published before Chinese was required.
    title_zh: Mapped[str] = mapped_column(String(200), default="", server_default="")
    body_md_zh: Mapped[str] = mapped_column(Text, default="", server_default="")
    summary_zh: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Comma-separated purpose keys whose terms this version changes (re-consent needed).
    changed_purposes: Mapped[str] = mapped_column(String(200), default="")
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def changed_purpose_keys(self) -> tuple[str, ...]:
        return tuple(p for p in self.changed_purposes.split(",") if p)

    def is_in_effect(self, now: datetime) -> bool:
        return self.published_at is not None and self.effective_at <= now

    def text(self, locale: str) -> PolicyText:
        """The words in exactly this language (parts may be empty on a draft)."""
        return PolicyText(locale, *(getattr(self, c) or "" for c in TEXT_COLUMNS[locale]))

    @property
    def texts(self) -> dict[str, PolicyText]:
        """The words in every language, English first."""
        return {locale: self.text(locale) for locale in TEXT_COLUMNS}

    def set_text(self, text: PolicyText) -> None:
        for column, value in zip(
            TEXT_COLUMNS[text.locale], (text.title, text.body_md, text.summary), strict=True
        ):
            setattr(self, column, value)

    def text_for_reader(self, locale: str) -> PolicyText:
        """The words a reader of `locale` gets (see `for_reader`)."""
        return for_reader(locale, self.texts)
