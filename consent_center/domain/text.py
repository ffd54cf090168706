"""The domain's texts: messages translated when shown, and translated in bulk through one
catalogue when a page shows many.

`_l("...")` is Flask-Babel's lazy string (it translates on `str()`, in the locale of the
request), which also keeps its message id and variables. `str()` looks up the locale and the
catalogue each time (about 8 µs); /me turns ~170 inventory texts into text per request, so
`translator()` looks the catalogue up once and translates each through it, the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from flask_babel import get_translations, gettext
from flask_babel.speaklater import LazyString


class Text(LazyString):
    """A message id and its variables, translated when shown."""

    def __init__(self, msgid: str, **variables) -> None:
        super().__init__(gettext, msgid, **variables)
        self.msgid = msgid
        self.variables = variables

    def in_catalogue(self, catalogue) -> str:
        """This text through `catalogue` (a `gettext` translations object): what `str()` gives
        when that is the request's catalogue."""
        text = catalogue.ugettext(self.msgid)
        return text % self.variables if self.variables else text


_l = Text


def translator(catalogue=None) -> Callable[[object], str]:
    """A function turning texts into the request's language through one catalogue lookup;
    anything that is not a `Text` is turned into text by `str()`."""
    catalogue = catalogue if catalogue is not None else get_translations()

    def translate(value) -> str:
        if isinstance(value, Text):
            return value.in_catalogue(catalogue)
        return str(value)

    return translate
