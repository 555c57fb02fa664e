"""Where a model runs and how much it takes per forward pass: the settings every model shares.

A service's model settings inherit these instead of declaring them again, so ``device``,
``threads`` and ``batch_size`` mean the same thing, with the same validation, in every
service (``SENTIMENT_MODEL__DEVICE``, ``RESPONDER_MODEL__THREADS``, ...). Torch-free: settings
are read by CLIs and unit tests that never load a model.
"""

from __future__ import annotations

from typing import TypedDict

from pydantic import BaseModel, ConfigDict, Field


class RuntimeOptions(TypedDict):
    """The keyword arguments every ``shopstream.models`` model takes for where it runs."""

    device: str
    threads: int | None


class ModelPlacementSettings(BaseModel):
    """Device and batch size of a model that shares its process's torch thread pool.

    A class whose batches differ from the encoder-sized default declares ``batch_size`` again,
    with its own default, bounds and meaning (prompts, items, texts).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
    batch_size: int = Field(default=32, ge=1, le=4_096)
    """Texts per encoder forward pass."""

    def runtime_options(self) -> RuntimeOptions:
        """``TextEncoder(name, **settings.runtime_options())``; threads stay as they are."""
        return {"device": self.device, "threads": None}


class ModelRuntimeSettings(ModelPlacementSettings):
    """Device, batch size and CPU threads of a process's main model.

    torch's intra-op thread pool belongs to the process, so a model that leaves it alone uses
    ``ModelPlacementSettings``: the responder's rephrasing generator runs in the encoder's
    pool, and the recommender's item encoder takes ``OMP_NUM_THREADS``.
    """

    threads: int | None = Field(default=None, ge=1, le=256)
    """torch intra-op CPU threads; unset uses every core. Give each replica its share."""

    def runtime_options(self) -> RuntimeOptions:
        """``TextEncoder(name, **settings.runtime_options())``, setting the threads at load."""
        return {"device": self.device, "threads": self.threads}
