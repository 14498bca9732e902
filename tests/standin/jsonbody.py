"""Admin request bodies: JSON parsed like Amlen's jansson, with jansson's wording in CWLNA6001 errors."""

from __future__ import annotations

import json
import re
from typing import Any

from messages import AmlenError

_PY_TO_JANSSON = {
    "Expecting property name enclosed in double quotes": "string or '}' expected",
    "Expecting ':' delimiter": "':' expected",
    "Expecting ',' delimiter": "'}' expected",
    "Extra data": "end of file expected",
    "Unterminated string starting at": "premature end of input",
    "Invalid control character at": "control character",
}


def _jansson_token(text: str, pos: int) -> str:
    """The token jansson would quote in "near '...'" at ``pos`` (a word, a string, or one character)."""
    if pos >= len(text):
        return "end of file"
    match = re.match(r'"[^"]*"?|[A-Za-z0-9_.+-]+|.', text[pos:], re.DOTALL)
    token = match.group(0) if match else text[pos]
    return f"'{token}'"


def parse_request_json(raw: bytes) -> Any:
    """Parse an admin request body like Amlen (jansson); malformed JSON is 400 CWLNA6001.

    The message imitates jansson's wording (``string or '}' expected near 'not'``), which is what the
    reference recorded; Python's own parser messages are translated for the common cases.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise AmlenError(400, 6001, "unable to decode byte", 1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        stripped = text[: exc.pos].strip()
        if exc.msg == "Expecting value":
            what = "'[' or '{' expected" if not stripped else "unexpected token"
        elif exc.msg == "Expecting ',' delimiter" and _innermost_open(text[: exc.pos]) == "[":
            what = "']' expected"
        else:
            what = next((v for k, v in _PY_TO_JANSSON.items() if exc.msg.startswith(k)), "invalid token")
        raise AmlenError(400, 6001, f"{what} near {_jansson_token(text, exc.pos)}", 1) from None


def _innermost_open(prefix: str) -> str:
    """Whether the parser is inside an array or an object at the end of ``prefix`` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else ""
