"""Versioned prompt files: their text and a version that changes whenever any of them does."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from string import Template

PROMPT_SERIES = "p1"
"""Bump when the prompts change meaning; the content digest changes on any edit anyway."""
PROMPT_KINDS = ("describe", "copy")


def prompt_name(kind: str, language: str) -> str:
    """English prompts instruct a chat model; Chinese ones read as the start of a document, so a
    base model (Gemma-3-270m) continues them as well as an instruction model follows them."""
    return f"{kind}.{language}.txt"


@cache
def prompt_template(name: str) -> Template:
    text = resources.files("shopstream_describer").joinpath("prompts", name)
    return Template(text.read_text(encoding="utf-8"))


@cache
def prompt_version(language: str = "en") -> str:
    """Per language, so a new Chinese prompt does not make every English text stale."""
    digest = hashlib.sha256()
    for kind in PROMPT_KINDS:
        digest.update(prompt_template(prompt_name(kind, language)).template.encode("utf-8"))
    return f"{PROMPT_SERIES}-{digest.hexdigest()[:10]}"
