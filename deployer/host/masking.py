"""The one masking rule of both halves: which forms of a secret are masked, and how.

The controller's ``Redactor`` and the engine's ``Events`` both admit secrets with
``secret_forms`` and mask with ``mask``; standard library only (shipped in the engine).
"""

from __future__ import annotations

import base64
import json
import re
from typing import Set
from urllib.parse import quote, quote_plus

#: values shorter than this are masked only as a whole word (``1`` is not masked in ``10``)
MIN_SECRET = 4
#: a multi-line secret (a key) is also masked line by line, for lines this long
MIN_SECRET_LINE = 8


def secret_forms(value: str) -> Set[str]:
    """The forms of ``value`` to mask: itself, as inside a JSON string, URL-encoded,
    base64-encoded (standard and URL-safe, with and without padding), and each of its
    lines. A value shorter than ``MIN_SECRET`` is itself only (``mask`` takes it as a word).
    """
    if not value:
        return set()
    if len(value) < MIN_SECRET:
        return {value}
    raw = value.encode("utf-8")
    forms = {value, json.dumps(value)[1:-1], quote(value, safe=""), quote_plus(value, safe="")}
    for encoded in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        forms |= {encoded.decode(), encoded.decode().rstrip("=")}
    for line in value.splitlines():
        if len(line.strip()) >= MIN_SECRET_LINE:
            forms.add(line.strip())
    return forms


MASK = "***"


def mask(text: str, secrets: Set[str]) -> str:
    """Every secret in ``text`` replaced by ``***``: longest first; short ones (under
    ``MIN_SECRET``) only where they stand as a word of their own."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= MIN_SECRET:
            text = text.replace(value, MASK)
        elif value in text:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", MASK, text)
    return text
