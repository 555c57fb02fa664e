"""Sequence classification with any Hugging Face ``AutoModelForSequenceClassification``.

Texts in, one row of class logits per text out (float32, on the CPU); what the classes mean
(``id2label``) is for the caller to map, e.g. the sentiment service's label-to-polarity map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import AutoModelForSequenceClassification

from shopstream.models.batching import padded_batches
from shopstream.models.pretrained import PretrainedHandle


class TextClassifier(PretrainedHandle):
    """Load once, then ``logits`` from one thread at a time; ``unload`` frees the memory."""

    auto_class = AutoModelForSequenceClassification

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        max_length: int = 256,
        threads: int | None = None,
        role: str = "classifier",
    ) -> None:
        """``model``: registry name, local directory or Hub id; ``revision`` only for a Hub id;
        ``threads``: torch's intra-op threads, set at load (None leaves them); ``role`` names
        the model in logs and errors."""
        super().__init__(model, revision=revision, device=device, threads=threads)
        self.role = role
        self.max_length = max_length

    @property
    def id2label(self) -> dict[int, str]:
        """Class index to the label name in the checkpoint's config."""
        model, _, _ = self._parts()
        return {int(k): str(v) for k, v in (model.config.id2label or {}).items()}

    def logits(self, texts: Sequence[str], *, batch_size: int = 32) -> torch.Tensor:
        """Shape (len(texts), classes), float32 on the CPU; texts past ``max_length`` tokens
        are truncated."""
        model, tokenizer, device = self._parts()
        token_ids: list[list[int]] = tokenizer(
            list(texts), truncation=True, max_length=self.max_length
        )["input_ids"]
        pad_id = int(tokenizer.pad_token_id or 0)
        logits = torch.zeros((len(texts), len(model.config.id2label or {})))
        with torch.inference_mode():
            for batch, input_ids, attention_mask in padded_batches(
                token_ids, pad_id, batch_size, side="right"
            ):
                output = model(
                    input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)
                ).logits
                logits[batch] = output.float().cpu()
        return logits
