"""Identifier words: ``getUserName`` is also "get", "user" and "name", on both sides.

The keyword side of search matches words. In code the words hide inside identifiers
(camelCase, PascalCase, snake_case, kebab-case, digits, acronyms such as ``HTTPServer``),
so a question about "the api router" never meets ``APIRouter``. ``code_words`` gives a
text's words with each identifier both whole and split, lower-cased; stores index a
document's ``code_words`` (with its file path's words) and ask with the query's, so both
sides split alike. Pure functions.
"""

from __future__ import annotations

import functools
import re

__all__ = ["code_words", "identifier_parts", "is_identifier_like", "path_words"]

_TOKEN = re.compile(r"\w+", re.UNICODE)
# An uppercase run before a capitalised word (HTTP|Server), a capitalised or lower word,
# an uppercase run, a digit run. [^\W\d_] is "a letter" in Unicode.
_PART = re.compile(
    r"(?:(?![a-z])[^\W\d_])+(?=(?![a-z])[^\W\d_][^\W\d_A-Z]|\b|\d|_)"  # acronym before a word
    r"|(?:(?![a-z])[^\W\d_])?[^\W\d_A-Z]+"  # Word or word (lower after an optional capital)
    r"|(?:(?![a-z])[^\W\d_])+"  # an uppercase run
    r"|\d+",
    re.UNICODE,
)


def identifier_parts(identifier: str) -> list[str]:
    """Return an identifier's words, lower-cased: ``parseJSON2XML`` -> parse, json, 2, xml.

    Splits at underscores and hyphens, between a lower-case letter and a capital, before
    the last capital of an acronym that starts a word (``HTTPServer`` -> http, server),
    and around digits. Unicode letters count as letters (``größeBerechnen`` -> größe,
    berechnen).
    """
    parts: list[str] = []
    for piece in re.split(r"[_\-]+", identifier):
        parts.extend(m.group(0).lower() for m in _PART.finditer(piece))
    return parts


def is_identifier_like(token: str) -> bool:
    """Return True for a token written as code: mixed case inside, ``_``, or digits with letters."""
    if "_" in token.strip("_") or "-" in token.strip("-"):
        return True
    inner = token[1:]
    if any(c.isupper() for c in inner) and any(c.islower() for c in token):
        return True
    return any(c.isdigit() for c in token) and any(c.isalpha() for c in token)


@functools.lru_cache(maxsize=1 << 16)
def _split(token: str) -> tuple[str, ...]:
    """Return ``identifier_parts(token)``, kept: a tree's identifiers repeat many times."""
    return tuple(identifier_parts(token))


def code_words(text: str) -> list[str]:
    """Return a text's words, lower-cased: each token whole and, if it splits, its parts.

    ``"APIRouter.include_router"`` gives apirouter, api, router, include_router, include,
    router. Order follows the text; a word repeats as often as it occurs (BM25 counts).
    """
    words: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        whole = token.lower()
        words.append(whole)
        parts = _split(token)
        if len(parts) > 1:
            words.extend(p for p in parts if p != whole)
    return words


def path_words(path: str) -> list[str]:
    """Return the words of a file path: folders and name, split like identifiers."""
    return code_words(re.sub(r"[/\\.]+", " ", path))
