"""Reading a request body: bounded before parsing, parsed in one pass, checked alike.

A body is JSON. Before it is parsed its values are counted (an upper bound, from the
commas outside strings), because parsing builds a Python object per value: a 16 MB body
of token ids would become about 40 times that in Python ints. Past the bound the request
is refused with 413 before anything is built. Then pydantic parses and validates it in one
pass; a JSON error says what was wrong. The checks every route shares live here too:
counts of inputs, and the blank-input rule (an input with nothing but whitespace and
control characters is refused, as an empty one is).
"""

from __future__ import annotations

import re
from typing import TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from ..embedder import Embedder
from .errors import ApiError
from .schemas import EmbeddingRequest

__all__ = [
    "check_count",
    "count_values",
    "embedding_inputs",
    "is_blank",
    "parse",
    "prefix_for",
    "prefix_of",
    "refuse_blank",
    "text_inputs",
]

# A JSON string literal, escapes included (for counting what lies outside strings).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# C0 and C1 control characters, deleted before deciding whether a text is blank.
_CONTROL = dict.fromkeys([*range(0x00, 0x20), *range(0x7F, 0xA0)])

_Model = TypeVar("_Model", bound=BaseModel)


def count_values(raw: bytes, enough: int) -> int:
    """Return an upper bound of the JSON values in ``raw`` past its first: its commas.

    Commas inside strings are not counted; the strings are only scanned when the plain
    count of commas is above ``enough``, so an ordinary body costs one ``bytes.count``.
    """
    total = raw.count(b",")
    if total <= enough:
        return total
    inside = sum(raw.count(b",", m.start(), m.end()) for m in _STRING.finditer(raw))
    return total - inside


def parse(model: type[_Model], raw: bytes, max_values: int) -> _Model:
    """Return the request parsed and checked in one pass (pydantic's JSON parser).

    Raises a 413 when the body holds more than ``max_values`` JSON values, before parsing;
    a 400 for JSON that does not parse, saying why; RequestValidationError (422) for
    values of the wrong type.
    """
    values = count_values(raw, max_values)
    if values > max_values:
        raise ApiError(
            413,
            f"the body holds about {values} JSON values; this server parses at most "
            f"{max_values} in one request (token ids count against --max-request-tokens)",
            code="too_many_values",
        )
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and errors[0]["type"] == "json_invalid":
            raise ApiError(400, _json_error(raw, errors[0]["msg"]), code="invalid_json") from None
        raise RequestValidationError(errors) from None


def _json_error(raw: bytes, message: str) -> str:
    """Return what is wrong with a body that is not JSON, in words a client can act on."""
    detail = message.removeprefix("Invalid JSON: ")
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc) or "hex escape" in detail:
            # pydantic says "unexpected end of hex escape" for "\ud800", which misleads.
            return (
                f"the body is not valid JSON: {exc}. A \\ud800-\\udfff escape must be one "
                "half of a surrogate pair: strings must be Unicode text"
            )
        if "utf-8" in str(exc).lower():
            return f"the body is not valid JSON: it is not UTF-8 text ({exc})"
    return f"the body is not valid JSON: {detail}"


def is_blank(text: str) -> bool:
    """Return True for a text of nothing but whitespace and control characters (or empty)."""
    if text and text[0].isprintable() and not text[0].isspace():
        return False  # the usual case, decided by its first character
    return not text.translate(_CONTROL).strip()


def refuse_blank(texts: list[str], what: str) -> None:
    """Raise a 400 naming the first blank text (see :func:`is_blank`)."""
    for i, text in enumerate(texts):
        if is_blank(text):
            shown = (
                "an empty string" if not text else "blank (only whitespace or control characters)"
            )
            raise ApiError(
                400,
                f"{what} at index {i} is {shown}: there is nothing to embed",
                param=what,
                code="empty_input",
            )


def check_count(n: int, limit: int, what: str) -> None:
    """Raise a 400 when a list of inputs is empty or longer than the server takes."""
    if n == 0:
        raise ApiError(400, f"{what} is empty", param=what, code="empty_input")
    if n > limit:
        raise ApiError(
            400,
            f"{what} has {n} items; this server takes at most {limit} per request "
            "(--max-client-batch)",
            param=what,
            code="too_many_inputs",
        )


def text_inputs(value: str | list[str], limit: int, what: str) -> list[str]:
    """Return a text or a list of texts as a list, checked: not empty, not too many, no blank."""
    texts = [value] if isinstance(value, str) else value
    check_count(len(texts), limit, what)
    refuse_blank(texts, what)
    return texts


def embedding_inputs(
    body: EmbeddingRequest, limit: int
) -> tuple[list[str] | None, list[list[int]] | None]:
    """Return an embeddings request's texts, or else its token id lists, checked."""
    value = body.input
    if isinstance(value, str):
        value = [value]
    check_count(len(value), limit, "input")
    first = value[0]
    if isinstance(first, str):
        texts: list[str] = value  # type: ignore[assignment]
        refuse_blank(texts, "input")
        return texts, None
    if isinstance(first, int):
        return None, [value]  # type: ignore[list-item]
    return None, value  # type: ignore[return-value]


def prefix_for(body: EmbeddingRequest, model: Embedder, is_text: bool) -> str:
    """Return the prefix ``input_type`` (or ``prompt_name``) asks for; "" without one."""
    kinds = {k for k in (body.input_type, body.prompt_name) if k is not None}
    if not kinds:
        return ""

    def refuse(message: str) -> ApiError:
        return ApiError(400, message, param="input_type", code="invalid_input_type")

    if len(kinds) > 1:
        raise refuse("input_type and prompt_name disagree")
    kind = kinds.pop()
    prefix = prefix_of(kind, model, "input_type")
    if not is_text:
        raise refuse("input_type applies to text input, not token ids")
    return prefix


def prefix_of(kind: str | None, model: Embedder, param: str) -> str:
    """Return the model's prefix for ``query`` or ``document`` ("" for None); else a 400."""
    if kind is None:
        return ""
    try:
        return model.prefix_of(kind)
    except ValueError:
        raise ApiError(
            400,
            f"{param} must be 'query' or 'document', got {kind!r}",
            param=param,
            code="invalid_input_type",
        ) from None
