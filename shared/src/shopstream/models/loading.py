"""What a model load reports, and the pieces of loading that encoders and generators share."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import dataclass

import torch
from transformers import PretrainedConfig
from transformers.utils import logging as transformers_logging

from shopstream.models.registry import ResolvedModel, SourceKind

logger = logging.getLogger("shopstream.models")


@dataclass(frozen=True)
class LoadReport:
    """Timing and lineage of one ``load()``, for logs and the ``model_load_seconds`` metric.

    ``load_seconds`` is the whole wall time of ``load()``, a first-use conversion included;
    ``conversion_seconds`` is the conversion's share (0 when the cache already had the model).
    """

    model_id: str
    revision: str
    source: SourceKind
    location: str
    device: str
    dtype: str
    converted: bool
    conversion_seconds: float
    load_seconds: float


def prepare_transformers() -> None:
    """Silence transformers' progress bars, which would flood a service's structured logs."""
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def hub_options(resolved: ResolvedModel) -> dict[str, str]:
    """``from_pretrained`` keyword arguments: a revision only makes sense for a Hub id."""
    return {"revision": resolved.revision} if resolved.source is SourceKind.HUB else {}


def loaded_revision(resolved: ResolvedModel, config: PretrainedConfig) -> str:
    """The Hub commit actually downloaded, when known, so lineage names an immutable revision."""
    commit = getattr(config, "_commit_hash", None)
    if resolved.source is SourceKind.HUB and isinstance(commit, str) and commit:
        return commit
    return resolved.revision


def release_memory(device: torch.device | None) -> None:
    gc.collect()
    if device is not None and device.type == "cuda":
        torch.cuda.empty_cache()


def finish_load(
    role: str,
    resolved: ResolvedModel,
    *,
    revision: str,
    device: torch.device,
    dtype: torch.dtype,
    started: float,
) -> LoadReport:
    """Build the report of a load that began at ``started`` (perf_counter) and log it."""
    load_seconds = time.perf_counter() - started
    report = LoadReport(
        model_id=resolved.model_id,
        revision=revision,
        source=resolved.source,
        location=resolved.location,
        device=str(device),
        dtype=str(dtype).removeprefix("torch."),
        converted=resolved.converted,
        conversion_seconds=resolved.conversion_seconds,
        load_seconds=round(load_seconds, 3),
    )
    conversion = (
        f", including a {resolved.conversion_seconds:.1f} s conversion"
        if resolved.converted
        else ""
    )
    logger.info(
        "loaded %s %s (%s, %s) on %s in %.2f s%s",
        role,
        resolved.model_id,
        revision,
        resolved.source,
        device,
        load_seconds,
        conversion,
    )
    return report
