"""Policy text: safe rendering of the Markdown, what a reader sees of it, the readable diff
between two texts, and the company's policy shipped as the first version's text.

Nothing here touches the database; the lifecycle of versions is in `policies`."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from ..domain import Locale
from ..models.policy import PolicyText

# Raw HTML in policy text is escaped, not passed through; nh3 is a second line of defence.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
_ALLOWED_TAGS = {
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "ul",
    "ol",
    "li",
    "strong",
    "em",
    "a",
    "blockquote",
    "code",
    "pre",
    "hr",
    "br",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}


def render_markdown(text: str) -> Markup:
    """Render policy Markdown to sanitized HTML."""
    html = _markdown.render(text or "")
    clean = nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes={"a": {"href", "title"}},
        url_schemes={"https", "http", "mailto", "tel"},
        link_rel="noopener noreferrer",
    )
    return Markup(clean)


# --- What a reader sees --------------------------------------------------------------------

HEADING = "heading"
ITEM = "item"
PARAGRAPH = "paragraph"
QUOTE = "quote"
ROW = "row"
CODE = "code"


@dataclass(frozen=True)
class TextBlock:
    """One block of the rendered text as a reader sees it: a heading, a list item, a
    paragraph (one per line when the text breaks lines), a quote, a table row or code."""

    role: str
    text: str


def _inline_lines(token) -> list[str]:
    """The visible text of an inline token, one string per line (hard breaks split lines);
    emphasis, links and code lose their markup and keep their words."""
    lines, current = [], []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            current.append(child.content)
        elif child.type == "softbreak":
            current.append(" ")
        elif child.type == "hardbreak":
            lines.append("".join(current))
            current = []
    lines.append("".join(current))
    return [" ".join(line.split()) for line in lines if line.strip()]


def rendered_blocks(markdown: str) -> list[TextBlock]:
    """The blocks of `markdown` in reading order, as `render_markdown` shows them."""
    blocks: list[TextBlock] = []
    open_blocks: list[str] = []  # the enclosing block tokens, innermost last
    row: list[str] | None = None
    for token in _markdown.parse(markdown or ""):
        if token.type.endswith("_open"):
            open_blocks.append(token.type.removesuffix("_open"))
            if token.type == "tr_open":
                row = []
        elif token.type.endswith("_close"):
            open_blocks.pop()
            if token.type == "tr_close" and row is not None:
                if any(row):
                    blocks.append(TextBlock(ROW, " · ".join(row)))
                row = None
        elif token.type in ("code_block", "fence"):
            if token.content.strip():
                blocks.append(TextBlock(CODE, token.content.strip()))
        elif token.type == "inline":
            lines = _inline_lines(token)
            if row is not None:
                row.append(" ".join(lines))
                continue
            if "heading" in open_blocks:
                role = HEADING
            elif "list_item" in open_blocks:
                role = ITEM
            elif "blockquote" in open_blocks:
                role = QUOTE
            else:
                role = PARAGRAPH
            blocks.extend(TextBlock(role, line) for line in lines)
    return blocks


# --- What changed ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffBlock:
    """One block of a diff: `same`, `added`, `removed`, or `changed` with word pieces;
    `role` is what the block is to a reader (heading, list item, paragraph...)."""

    kind: str
    role: str = PARAGRAPH
    text: str = ""
    pieces: tuple[tuple[str, str], ...] = ()


_WORD = re.compile(r"\s+|[\w'-]+|[^\w\s]", re.UNICODE)


def _words(text: str) -> list[str]:
    # CJK text has no spaces: compare it character by character.
    out: list[str] = []
    for token in _WORD.findall(text):
        if any("\u3000" <= ch <= "\u9fff" or "\uff00" <= ch <= "\uffef" for ch in token):
            out.extend(token)
        else:
            out.append(token)
    return out


def diff_texts(old: str, new: str) -> list[DiffBlock]:
    """What changed between two policy texts as a reader sees them: the rendered headings,
    list items and paragraphs are compared (not the Markdown source, so a change of markup
    alone is no change), with word-level detail for an edited block."""
    olds, news = rendered_blocks(old), rendered_blocks(new)
    blocks: list[DiffBlock] = []
    matcher = difflib.SequenceMatcher(a=olds, b=news, autojunk=False)
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            blocks.extend(DiffBlock("same", b.role, b.text) for b in news[b1:b2])
            continue
        gone, come = olds[a1:a2], news[b1:b2]
        # Pair edited blocks one to one; the rest are plain additions or removals.
        paired = min(len(gone), len(come)) if op == "replace" else 0
        for o, n in zip(gone[:paired], come[:paired], strict=True):
            if o.text == n.text:  # the same words in another role (a paragraph became a heading)
                blocks.append(DiffBlock("removed", o.role, o.text))
                blocks.append(DiffBlock("added", n.role, n.text))
            else:
                blocks.append(DiffBlock("changed", n.role, pieces=_word_pieces(o.text, n.text)))
        blocks.extend(DiffBlock("removed", b.role, b.text) for b in gone[paired:])
        blocks.extend(DiffBlock("added", b.role, b.text) for b in come[paired:])
    return blocks


def _word_pieces(old: str, new: str) -> tuple[tuple[str, str], ...]:
    a, b = _words(old), _words(new)
    pieces: list[tuple[str, str]] = []
    for op, a1, a2, b1, b2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            pieces.append(("same", "".join(a[a1:a2])))
        else:
            if a2 > a1:
                pieces.append(("removed", "".join(a[a1:a2])))
            if b2 > b1:
                pieces.append(("added", "".join(b[b1:b2])))
    return tuple(pieces)


# --- The company's policy, shipped as the first version -----------------------------------

SEED_DIR = Path(__file__).resolve().parent.parent / "seed"
# The company's policy and its faithful Simplified Chinese text, paragraph by paragraph.
SEED_FILES = {Locale.EN: "privacy-policy.txt", Locale.ZH: "privacy-policy.zh.txt"}
SEED_SUMMARIES = {
    Locale.EN: "The company's privacy policy as first published in Consent Center.",
    Locale.ZH: "本公司隐私政策在同意中心首次发布的版本。",
}

# "Email: x@y" or "电话：400…": a short label, a colon, a value.
_CONTACT_LINE = re.compile(r"^[^:：]{1,20}[:：]\s*\S")
_SENTENCE_END = (".", ";", ":", "。", "；", "：", "！", "？", "!", "?")


def seed_text_to_markdown(text: str) -> tuple[str, str]:
    """Turn the company's plain-text policy into Markdown; returns (title, markdown).

    The first line is the title. "- " lines stay list items; "Label: value" lines (the
    contact details) stay together as one paragraph with a line each; other short lines
    that end without punctuation are section headings; everything else is a paragraph.
    """
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    title = lines[0].strip()
    out: list[str] = []
    for line in lines[1:]:
        stripped = line.strip()
        if stripped.startswith("- "):
            out.append(stripped)
            continue
        if out and out[-1].startswith("- "):
            out.append("")
        if _CONTACT_LINE.match(stripped) and len(stripped) < 70:
            out.append(stripped + "  ")  # a hard line break keeps each on its own line
        elif len(stripped) < 70 and not stripped.endswith(_SENTENCE_END):
            out.extend([f"## {stripped}", ""])
        else:
            out.extend([stripped, ""])
    return title, "\n".join(out).strip() + "\n"


def seed_policy() -> dict[str, PolicyText]:
    """The company's policy in every language, as the first version's words."""
    texts = {}
    for locale, name in SEED_FILES.items():
        title, body = seed_text_to_markdown((SEED_DIR / name).read_text(encoding="utf-8"))
        texts[locale] = PolicyText(locale, title, body, SEED_SUMMARIES[locale])
    return texts


# --- The diff of two versions, per language ------------------------------------------------


@dataclass(frozen=True)
class TextDiff:
    """What changed in one language's text; `blocks` is None when the older version has no
    text in that language to compare with."""

    locale: str
    blocks: list[DiffBlock] | None

    @property
    def lang(self) -> str:
        return PolicyText(self.locale).lang


def diff_of(old: PolicyText, new: PolicyText) -> TextDiff:
    """What changes from the words `old` to `new` (one language)."""
    if not old.body_md.strip():
        return TextDiff(new.locale, None)
    return TextDiff(new.locale, diff_texts(old.body_md, new.body_md))


def diff_for_reader(locale: str, base, version) -> TextDiff:
    """What changes from version `base` to `version` for a reader of `locale`: in their
    language when both versions have a text in it, in English otherwise."""
    if not all(v.text(locale).body_md.strip() for v in (base, version)):
        locale = Locale.EN
    return diff_of(base.text(locale), version.text(locale))
