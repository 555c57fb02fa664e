"""Length bucketing and dynamic padding shared by the encoder and the generator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

import torch


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Group item indices into batches of similar length, longest batch first.

    Similar lengths mean little padding per batch; longest first means a batch that would run
    out of memory does so at once rather than at the end of a long call.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda index: lengths[index], reverse=True)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, *, side: Literal["left", "right"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to the longest in this batch; return (input_ids, attention_mask).

    Encoders pad on the right; decoder-only generators pad on the left so that every prompt ends
    where generation starts.
    """
    width = max(len(sequence) for sequence in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        if not sequence:
            continue
        columns = slice(width - len(sequence), width) if side == "left" else slice(0, len(sequence))
        input_ids[row, columns] = torch.tensor(sequence, dtype=torch.long)
        attention_mask[row, columns] = 1
    return input_ids, attention_mask


def padded_batches(
    token_ids: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    *,
    side: Literal["left", "right"],
) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """``length_sorted_batches`` of ``token_ids``, each padded: (indices, input_ids,
    attention_mask), the tensors still on the CPU."""
    for batch in length_sorted_batches([len(ids) for ids in token_ids], batch_size):
        input_ids, attention_mask = pad_batch([token_ids[i] for i in batch], pad_id, side=side)
        yield batch, input_ids, attention_mask
