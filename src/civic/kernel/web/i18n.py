"""Message catalogs (Babel .po files) and the language of each request."""

from __future__ import annotations

import io
from contextvars import ContextVar
from functools import cache
from gettext import NullTranslations
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from starlette.requests import Request

LOCALE_DIR = Path(__file__).resolve().parents[2] / "web" / "locale"
LANG_COOKIE = "civic_lang"
_current: ContextVar[NullTranslations] = ContextVar("civic_translations")


@cache
def translations_for(locale: str) -> NullTranslations:
    """Load a language's catalog from its .po file; Korean, the source language, needs none."""
    po_path = LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po_path.is_file():
        return NullTranslations()
    with po_path.open("rb") as po:
        catalog = read_po(po, locale=locale)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def choose_locale(request: Request, *, offered: list[str], default: str) -> str:
    """Pick the language: ?lang=, then the cookie, then Accept-Language, then the default."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in offered:
            return candidate
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in offered:
            return code
    return default


def activate(locale: str) -> None:
    """Make locale the language of everything rendered in this request."""
    _current.set(translations_for(locale))


def gettext(message: str) -> str:
    """Translate message into the request's language."""
    return _current.get(NullTranslations()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """Translate with a plural form."""
    return _current.get(NullTranslations()).ngettext(singular, plural, n)
