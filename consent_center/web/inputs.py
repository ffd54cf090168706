"""Request input that no view should have to think about, refused once, in front of them all.

- A NUL byte or bytes that are not UTF-8, in the path, the query or a form field, is a 400:
  no field means either, and PostgreSQL refuses NUL in text (a 500 if it got that far).
- `<int:...>` in a route matches only integers that fit a database integer column; a larger
  number matches no route (404) instead of overflowing the query.
- Page numbers are read by `page_arg`, the one place that bounds them.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

# The largest value of a 32-bit signed integer column (PostgreSQL `integer`).
INT_COLUMN_MAX = 2**31 - 1
# Pages beyond this are refused as not found (no listing is that long).
PAGE_MAX = 100_000


class ColumnIntConverter(IntegerConverter):
    """`<int:...>` bounded to what an integer column holds, unless the rule says otherwise."""

    def __init__(self, url_map, fixed_digits=0, min=None, max=INT_COLUMN_MAX, signed=False):
        if min is None and signed:
            min = -INT_COLUMN_MAX - 1
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def _clean(raw: bytes) -> bool:
    if b"\x00" in raw:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def readable_query(query: str | bytes) -> bool:
    """Whether a query string (or a form body) decodes to UTF-8 text without NUL; a WSGI
    `QUERY_STRING` is latin-1 text whose code points are the raw bytes."""
    if isinstance(query, str):
        query = query.encode("latin-1", "replace")
    return _clean(unquote_to_bytes(query.replace(b"+", b" ")))


def page_arg(name: str = "page") -> int:
    """The page number the query asks for: 1 when absent or not a number; 404 past PAGE_MAX."""
    value = request.args.get(name, "")
    if not (value.isascii() and value.isdigit()):
        return 1
    if len(value) > len(str(PAGE_MAX)) or int(value) > PAGE_MAX:
        abort(404)
    return max(int(value), 1)


def refuse_unreadable_input() -> None:
    """400 for a NUL byte or invalid UTF-8 in the path, the query or a form field."""
    # WSGI hands the path over as latin-1 text: its code points are the raw bytes.
    path = request.environ.get("PATH_INFO", "").encode("latin-1", "replace")
    if not _clean(path) or not readable_query(request.query_string):
        abort(400)
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if request.mimetype == "application/x-www-form-urlencoded":
        if not readable_query(request.get_data(cache=True)):
            abort(400)
    elif request.mimetype == "multipart/form-data":
        values = [*request.form.keys(), *request.form.values()]
        values += [f.filename or "" for f in request.files.values()]
        if any("\x00" in v or "\ufffd" in v for v in values):
            abort(400)


def init_app(app: Flask) -> None:
    """Register the bounded int converter (before any route) and the input check (first)."""
    app.url_map.converters["int"] = ColumnIntConverter
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_unreadable_input)
