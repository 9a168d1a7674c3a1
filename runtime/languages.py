"""The languages the service accepts, and validation of ``sourceLanguage`` / ``targetLanguage``.

The lists ship in ``runtime/data/languages.json`` (see its ``_source`` note): ``source`` is
what Amazon Translate accepts as a source language, ``target`` what it can translate into and
Amazon Polly can also speak with a neural voice. Codes are two-letter ISO 639-1 only.
"""

from __future__ import annotations

import json
import re

from runtime import data as data_files
from runtime.errors import ErrorCode, ServiceError
from runtime.protocol import json_kind

__all__ = [
    "LANGUAGE_CODE",
    "SOURCE_LANGUAGES",
    "TARGET_LANGUAGES",
    "validate_language",
    "validate_source_language",
    "validate_target_language",
]

LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
"""A two-letter ISO 639-1 code, lowercase. Match it with ``fullmatch``."""


def _load() -> tuple[frozenset[str], frozenset[str]]:
    """Read and check ``languages.json``; a broken file fails the import, loudly."""
    text = data_files.read_text("languages.json")
    data = json.loads(text)
    lists: dict[str, frozenset[str]] = {}
    for key in ("source", "target"):
        codes = data.get(key)
        if not isinstance(codes, list) or not codes:
            raise ValueError(f"languages.json: {key!r} must be a non-empty list")
        bad = [code for code in codes if not isinstance(code, str) or not _is_code(code)]
        if bad:
            raise ValueError(f"languages.json: malformed {key} codes {bad!r}")
        lists[key] = frozenset(codes)
    if not lists["target"] <= lists["source"]:
        extra = sorted(lists["target"] - lists["source"])
        raise ValueError(f"languages.json: target codes not in source: {extra!r}")
    return lists["source"], lists["target"]


def _is_code(value: str) -> bool:
    return LANGUAGE_CODE.fullmatch(value) is not None


SOURCE_LANGUAGES: frozenset[str]
TARGET_LANGUAGES: frozenset[str]
SOURCE_LANGUAGES, TARGET_LANGUAGES = _load()


def validate_language(value: object, *, field: str, supported: frozenset[str]) -> str:
    """Return ``value`` as a normalised language code, or raise ``ServiceError``.

    Surrounding whitespace is stripped and ASCII letters are lowercased (``" EN "`` becomes
    ``"en"``); nothing else is normalised, so region variants such as ``en-US`` are malformed.

    Raises:
        ServiceError: ``INVALID_PARAMETERS`` (``details.field``) if the value is missing, not a
            string, or not a two-letter code; ``UNSUPPORTED_LANGUAGE`` (``details.field`` and
            ``details.supported``, sorted) if it is well-formed but not in ``supported``.
    """
    if value is None:
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' is required; send a two-letter ISO 639-1 language code such as 'en'.",
            field=field,
        )
    if not isinstance(value, str):
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' must be a string, not {json_kind(value)}; "
            "send a two-letter ISO 639-1 language code such as 'en'.",
            field=field,
        )
    stripped = value.strip()
    # isascii() first: str.lower() maps some non-ASCII characters to ASCII letters
    # (KELVIN SIGN -> "k"), and lookalikes must not pass as language codes.
    code = stripped.lower() if stripped.isascii() else ""
    if not _is_code(code):
        raise ServiceError(
            ErrorCode.INVALID_PARAMETERS,
            f"'{field}' must be a two-letter ISO 639-1 language code; send one such as 'en'.",
            field=field,
        )
    if code not in supported:
        raise ServiceError(
            ErrorCode.UNSUPPORTED_LANGUAGE,
            f"Language '{code}' is not supported as '{field}'; "
            "choose one of the codes in details.supported.",
            field=field,
            supported=sorted(supported),
        )
    return code


def validate_source_language(value: object) -> str:
    """Validate ``sourceLanguage`` against ``SOURCE_LANGUAGES``; see ``validate_language``."""
    return validate_language(value, field="sourceLanguage", supported=SOURCE_LANGUAGES)


def validate_target_language(value: object) -> str:
    """Validate ``targetLanguage`` against ``TARGET_LANGUAGES``; see ``validate_language``."""
    return validate_language(value, field="targetLanguage", supported=TARGET_LANGUAGES)
