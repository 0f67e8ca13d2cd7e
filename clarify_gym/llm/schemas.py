"""Structured outputs: the JSON schemas of the LLM roles, and the request field that sends them.

Every JSON role sends its schema through ``response_format`` (``{"type": "json_schema", ...}``,
which OpenAI's structured outputs, vLLM's guided decoding and llama.cpp's grammar-constrained
sampling all take). Strings and arrays carry length caps, so a grammar-constrained reply always
ends well inside the role's ``max_tokens``.

``CLARIFY_GYM_LLM_JSON`` (and per role ``CLARIFY_GYM_<ROLE>_JSON``) picks how:

==========  ====================================================================================
``schema``  (default) ``response_format`` ``json_schema``, strict; a server that answers
            HTTP 400 to it gets the prompt-only request instead, once, with a logged warning
``object``  ``response_format={"type": "json_object"}`` (any JSON object; no shape)
``off``     no ``response_format``: the prompt alone asks for the JSON
==========  ====================================================================================

Default reply lengths (``max_tokens``) per role, used unless ``CLARIFY_GYM_LLM_MAX_TOKENS`` or
``CLARIFY_GYM_<ROLE>_MAX_TOKENS`` (or ``max_tokens=`` in the config) says otherwise: the oracle
:data:`ORACLE_MAX_TOKENS`, the judge :func:`judge_max_tokens` (64 + 8 per checklist item), the
checklist builder :func:`builder_max_tokens`, the writer :data:`WRITER_MAX_TOKENS`, the chat
agent :data:`AGENT_MAX_TOKENS`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AGENT_MAX_TOKENS",
    "ANSWER_MAX_CHARS",
    "JSON_MODES",
    "ORACLE_MAX_TOKENS",
    "WRITER_MAX_TOKENS",
    "builder_max_tokens",
    "checklist_schema",
    "judge_max_tokens",
    "oracle_schema",
    "parse_json_mode",
    "response_format",
    "verdict_schema",
]

JSON_MODES = ("schema", "object", "off")
#: The longest oracle answer the schema allows (the env cuts answers at 600 characters).
ANSWER_MAX_CHARS = 400
#: Room for a 400-character answer (~100 tokens) and up to k ids, with margin.
ORACLE_MAX_TOKENS = 256
#: The writer drafts a whole outline.
WRITER_MAX_TOKENS = 1500
#: A thinking block and one question.
AGENT_MAX_TOKENS = 512
#: Longest checklist item the builder's schema allows.
ITEM_MAX_CHARS = 200
#: Most source ids per built checklist item.
ITEM_MAX_SOURCES = 8


def judge_max_tokens(n: int) -> int:
    """The judge's ``max_tokens`` for ``n`` checklist items: ``{"met": [...]}`` plus 8 per item.

    >>> judge_max_tokens(10)
    144
    """
    return 64 + 8 * n


def builder_max_tokens(n: int) -> int:
    """The checklist builder's ``max_tokens`` for ``n`` specification sentences (about two items
    of up to :data:`ITEM_MAX_CHARS` characters each, capped at 2048).

    >>> builder_max_tokens(4), builder_max_tokens(100)
    (576, 2048)
    """
    return min(2048, 64 + 128 * n)


def parse_json_mode(value: str | bool | None) -> str | None:
    """A JSON mode from a config value or environment variable (``None`` stays unset).

    ``True``/``False`` are the old ``json_mode`` flag (``object`` / ``off``).

    >>> parse_json_mode(" Schema "), parse_json_mode(True), parse_json_mode(None)
    ('schema', 'object', None)
    >>> parse_json_mode("grammar")
    Traceback (most recent call last):
    ValueError: unknown JSON mode 'grammar': use schema, object or off (CLARIFY_GYM_LLM_JSON)
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return "object" if value else "off"
    mode = value.strip().lower()
    if mode not in JSON_MODES:
        raise ValueError(
            f"unknown JSON mode {value!r}: use schema, object or off (CLARIFY_GYM_LLM_JSON)"
        )
    return mode


def response_format(mode: str, name: str, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``response_format`` request field for ``mode`` (``None``: send none).

    >>> response_format("schema", "verdict", verdict_schema(2))["json_schema"]["strict"]
    True
    >>> response_format("object", "verdict", None), response_format("off", "verdict", None)
    ({'type': 'json_object'}, None)
    """
    if mode == "schema" and schema is not None:
        return {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": schema, "strict": True},
        }
    if mode in ("schema", "object"):
        return {"type": "json_object"}
    return None


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _ids(most: int) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "integer"}, "maxItems": most}


def oracle_schema(k: int) -> dict[str, Any]:
    """The user oracle's reply: ``{"answer": str <= 400 chars, "cited": int[] <= k}``.

    >>> oracle_schema(3)["properties"]["cited"]["maxItems"]
    3
    """
    return _object({"answer": {"type": "string", "maxLength": ANSWER_MAX_CHARS}, "cited": _ids(k)})


def verdict_schema(n: int) -> dict[str, Any]:
    """The judge's reply: ``{"met": bool[n]}``, exactly ``n`` values.

    >>> s = verdict_schema(4)["properties"]["met"]
    >>> s["minItems"], s["maxItems"], s["items"]
    (4, 4, {'type': 'boolean'})
    """
    return _object(
        {"met": {"type": "array", "items": {"type": "boolean"}, "minItems": n, "maxItems": n}}
    )


def checklist_schema(max_items: int) -> dict[str, Any]:
    """The checklist builder's reply: ``{"items": [{"text": str, "sources": int[]}]}``, 1 to
    ``max_items`` items."""
    item = _object(
        {"text": {"type": "string", "maxLength": ITEM_MAX_CHARS}, "sources": _ids(ITEM_MAX_SOURCES)}
    )
    return _object(
        {"items": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items}}
    )
