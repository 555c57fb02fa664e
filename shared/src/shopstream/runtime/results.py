"""What a result's lineage is made of: the served model's identity.

Results themselves are made by `ServiceContext.result`, the one place an envelope is filled in.
"""

from __future__ import annotations

from typing import Protocol

from shopstream.events import Lineage


class ServedModel(Protocol):
    """A model whose identity every result it helped make carries in its lineage; read after
    `load()` (a revision may only be known once the weights are resolved)."""

    @property
    def model_id(self) -> str: ...

    @property
    def model_revision(self) -> str: ...


def lineage_of(model: ServedModel) -> Lineage:
    return Lineage(model_id=model.model_id, model_revision=model.model_revision)
