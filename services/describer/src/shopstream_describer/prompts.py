"""Versioned prompt files: their text and a version that changes whenever any of them does."""

from __future__ import annotations

import hashlib
from functools import cache
from importlib import resources
from string import Template

PROMPT_SERIES = "p1"
"""Bump when the prompts change meaning; the content digest changes on any edit anyway."""
PROMPT_FILES = ("describe.en.txt", "copy.en.txt")


@cache
def prompt_template(name: str) -> Template:
    text = resources.files("shopstream_describer").joinpath("prompts", name)
    return Template(text.read_text(encoding="utf-8"))


@cache
def prompt_version() -> str:
    digest = hashlib.sha256()
    for name in PROMPT_FILES:
        digest.update(prompt_template(name).template.encode("utf-8"))
    return f"{PROMPT_SERIES}-{digest.hexdigest()[:10]}"
