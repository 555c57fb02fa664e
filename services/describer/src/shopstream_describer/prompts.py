"""Versioned prompt files, rendered as chat messages, and a version that changes with any edit.

Per language there is a system message (the rules, and that product text is data, never
instructions), a user message per output kind (``describe``, ``copy``) and, for copy, one line
of guidance per channel (``channels.json``). Product text only ever enters the user message,
inside a delimited block, with line breaks flattened so that an attribute cannot fake the
prompt's structure.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from string import Template

ChatMessage = Mapping[str, str]
"""``{"role": "system" | "user" | "assistant", "content": ...}``"""
ChatPrompt = tuple[ChatMessage, ...]

PROMPT_SERIES = "p2"
"""Bump when the prompts change meaning; the content digest changes on any edit anyway."""
PROMPT_KINDS = ("system", "describe", "copy")
_CONTROL = re.compile(r"[\r\n\t\u2028\u2029]+")


def _read(name: str) -> str:
    return (
        resources.files("shopstream_describer")
        .joinpath("prompts", name)
        .read_text(encoding="utf-8")
    )


@cache
def prompt_template(kind: str, language: str) -> Template:
    return Template(_read(f"{kind}.{language}.txt"))


@cache
def channel_guidance(language: str) -> Mapping[str, str]:
    guidance: dict[str, dict[str, str]] = json.loads(_read("channels.json"))
    return guidance[language]


@cache
def prompt_version(language: str = "en") -> str:
    """Per language, so a new Chinese prompt does not make every English text stale."""
    digest = hashlib.sha256()
    for kind in PROMPT_KINDS:
        digest.update(prompt_template(kind, language).template.encode("utf-8"))
    digest.update(json.dumps(channel_guidance(language), sort_keys=True).encode("utf-8"))
    return f"{PROMPT_SERIES}-{digest.hexdigest()[:10]}"


def as_data(text: str) -> str:
    """Product text as one line of data: no line breaks, no block delimiters of our own."""
    flat = _CONTROL.sub(" ", text)
    return flat.replace("<", "‹").replace(">", "›").strip()


def chat(kind: str, language: str, **fields: str | int) -> ChatPrompt:
    """The system message and the rendered user message of ``kind`` in ``language``."""
    return (
        {"role": "system", "content": prompt_template("system", language).template.strip()},
        {"role": "user", "content": prompt_template(kind, language).substitute(fields).strip()},
    )
