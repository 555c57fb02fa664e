"""The item embedder: catalogue text to unit vectors for content similarity. No Kafka here.

Items are embedded when their product is upserted, in batches, by the catalogue follower;
never on the request path. Title, brand, category and attributes are embedded as one passage.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shopstream.models import TextEncoder
from shopstream_recommender.config import EmbedderConfig

logger = logging.getLogger("shopstream.recommender")


class ItemEmbedder:
    """A `TextEncoder` from the model registry behind `load` / `predict_batch` / `unload`."""

    def __init__(self, config: EmbedderConfig) -> None:
        self._config = config
        self._encoder = TextEncoder(
            config.encoder,
            max_length=config.max_length,
            revision=config.revision,
            **config.runtime_options(),
        )

    @property
    def model_id(self) -> str:
        return self._encoder.model_id

    @property
    def model_revision(self) -> str:
        return self._encoder.revision or "unversioned"

    def load(self) -> None:
        report = self._encoder.load()
        logger.info(
            "item encoder loaded",
            extra={"model": self.model_id, "seconds": round(report.load_seconds, 3)},
        )

    def predict_batch(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit vector per text, shape (len(texts), dim)."""
        return self._encoder.encode(list(texts), kind="passage", batch_size=self._config.batch_size)

    def unload(self) -> None:
        self._encoder.unload()
