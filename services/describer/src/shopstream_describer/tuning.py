"""Teach the generator a shop's own copy: LoRA on (product facts -> human copy) pairs.

The training prompt is exactly the one the service sends (`DescriberPipeline.description_prompt`),
and the target is the human copy after the same gate the service applies to the model: every
clause with a claim the product's facts do not support, or a compliance term, is dropped
first. So the adapter learns the shop's voice without learning to invent "breathable".
Rows in the held-out split (`evaluation.held_out`) are never trained on.
"""

from __future__ import annotations

import hashlib
import platform
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoModelForCausalLM
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shopstream.models import lora
from shopstream.models.device import inference_dtype
from shopstream.models.pretrained import load_pretrained
from shopstream_describer.claims import FactIndex, ground
from shopstream_describer.compliance import Lexicon
from shopstream_describer.evaluation import EvalRow, held_out, read_rows
from shopstream_describer.facts import ProductFacts
from shopstream_describer.pipeline import DescriberPipeline, DescriptionJob
from shopstream_describer.prompts import prompt_version

# A clause ends at a sentence or clause mark; the mark stays with its clause.
_CLAUSE = re.compile(r"[^，。！？；,.!?;]+[，。！？；,.!?;]*")
_PLACEHOLDER = re.compile(r"\bBRAND\b|BRAND")
# Catalogue exports that glued lines together ("dupattaBeige made to measure") or kept
# sizing help ("How to measure bust?") are not copy worth imitating.
_RUN_TOGETHER = re.compile(r"[a-z][A-Z]|\?")


@dataclass(frozen=True)
class TuningSettings:
    """What a tuning run does; recorded whole in the adapter's metadata."""

    epochs: int = 1
    batch_size: int = 4
    learning_rate: float = 2e-4
    warmup_steps: int = 8
    max_target_tokens: int = 192
    min_clean_share: float = 0.6
    """A row whose copy loses more than this share of characters to the gate is skipped."""
    rows_per_language: dict[str, int] = field(default_factory=lambda: {"en": 120})
    """At most this many training rows of a language (the first, in file order): the Chinese
    copy is what the adapter is for; English rows keep its English in catalogue style."""
    seed: int = 13
    adapter: lora.AdapterSettings = field(default_factory=lora.AdapterSettings)


@dataclass(frozen=True)
class Example:
    prompt_ids: list[int]
    target_ids: list[int]


def clean_copy(text: str, facts: ProductFacts, lexicon: Lexicon) -> str:
    """`text` without the clauses the describer's gate would reject, and without placeholders."""
    index = FactIndex.of([facts])
    kept = [
        clause
        for clause in _CLAUSE.findall(_PLACEHOLDER.sub("", text))
        if not ground(clause, index).unsupported and not lexicon.scan(clause)
    ]
    cleaned = "".join(kept).strip()
    return re.sub(r"[，,；;]$", "。" if re.search(r"[\u4e00-\u9fff]", cleaned) else ".", cleaned)


def training_pairs(
    rows: Sequence[EvalRow], lexicon: Lexicon, settings: TuningSettings
) -> list[tuple[DescriptionJob, str]]:
    """(job, cleaned copy) for every training-split row whose copy survives the gate."""
    pairs = []
    per_language: dict[str, int] = {}
    for row in rows:
        if held_out(row) or not row.reference or _RUN_TOGETHER.search(row.reference):
            continue
        facts = ProductFacts.from_payload(row.payload)
        language = facts.locale.split("-", 1)[0]
        if per_language.get(language, 0) == settings.rows_per_language.get(language, -1):
            continue
        cleaned = clean_copy(row.reference, facts, lexicon)
        if len(cleaned) >= settings.min_clean_share * len(row.reference.strip()):
            pairs.append((DescriptionJob(facts, facts.locale, lexicon), cleaned))
            per_language[language] = per_language.get(language, 0) + 1
    return pairs


def encode(
    tokenizer: PreTrainedTokenizerBase,
    pipeline: DescriberPipeline,
    job: DescriptionJob,
    copy: str,
    max_target_tokens: int,
) -> Example:
    """Prompt ids as the service renders them, and the copy plus the end-of-turn marker."""
    messages = [dict(message) for message in pipeline.description_prompt(job)]
    prompt = str(
        tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    )
    whole = str(
        tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": copy}], tokenize=False
        )
    )
    if not whole.startswith(prompt):
        raise ValueError("the chat template renders the prompt differently inside a dialogue")
    prompt_ids: list[int] = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids: list[int] = tokenizer(whole[len(prompt) :].rstrip(), add_special_tokens=False)[
        "input_ids"
    ]
    return Example(prompt_ids, target_ids[:max_target_tokens])


def _batches(examples: list[Example], size: int, rng: random.Random) -> list[list[Example]]:
    """Shuffled batches of similar length (less padding), in a shuffled order."""
    shuffled = examples[:]
    rng.shuffle(shuffled)
    window = size * 8
    batches: list[list[Example]] = []
    for start in range(0, len(shuffled), window):
        chunk = sorted(
            shuffled[start : start + window], key=lambda e: len(e.prompt_ids) + len(e.target_ids)
        )
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def _collate(
    batch: Sequence[Example], pad_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    longest = max(len(e.prompt_ids) + len(e.target_ids) for e in batch)
    ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), longest), dtype=torch.long)
    for row, example in enumerate(batch):
        sequence = example.prompt_ids + example.target_ids
        ids[row, : len(sequence)] = torch.tensor(sequence)
        labels[row, len(example.prompt_ids) : len(sequence)] = torch.tensor(example.target_ids)
        mask[row, : len(sequence)] = 1
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "labels": labels.to(device),
    }


def training_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the hardware has it (a CUDA GPU or a CPU with bf16 instructions), else
    float32; never float16, whose range overflows in the gradients."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return inference_dtype(device, half_on_gpu=False, bf16_on_cpu=True)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tune(
    data: Sequence[Path],
    out: Path,
    *,
    generator: str,
    lexicon: Lexicon,
    settings: TuningSettings,
    device_name: str = "auto",
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    """Train an adapter for `generator` on the training split of `data`; write it to `out`.

    `progress(step, steps, loss)` is called after every optimiser step. Returns the metadata
    written next to the weights.
    """
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)  # noqa: S311  shuffling, not secrets
    pipeline = DescriberPipeline(None)
    pairs: list[tuple[DescriptionJob, str]] = []
    for path in data:
        pairs += training_pairs(list(read_rows(path)), lexicon, settings)
    if not pairs:
        raise ValueError("no training rows: the files need references outside the held-out split")

    loaded = load_pretrained(
        AutoModelForCausalLM, generator, device=device_name, dtype=training_dtype
    )
    tokenizer, model, device, dtype = loaded.tokenizer, loaded.model, loaded.device, loaded.dtype
    layers = lora.attach(model, settings.adapter)
    examples = [
        encode(tokenizer, pipeline, job, copy, settings.max_target_tokens) for job, copy in pairs
    ]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=0.0)
    plan = [_batches(examples, settings.batch_size, rng) for _ in range(settings.epochs)]
    steps = sum(len(epoch) for epoch in plan)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda step: (
            min(1.0, (step + 1) / settings.warmup_steps) * max(0.05, 1.0 - step / max(1, steps))
        ),
    )
    model.train()
    losses: list[float] = []
    step = 0
    for epoch in plan:
        for batch in epoch:
            loss = model(**_collate(batch, pad_id, device)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimiser.step()
            schedule.step()
            optimiser.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            step += 1
            if progress is not None:
                progress(step, steps, losses[-1])
    tail = losses[-max(1, len(losses) // 5) :]
    metadata: dict[str, Any] = {
        "trained_for": "describe",
        "prompt_versions": {"zh": prompt_version("zh"), "en": prompt_version("en")},
        "base_revision": loaded.resolved.revision,
        "settings": asdict(settings),
        "data": [{"file": path.name, "sha256": _file_digest(path)} for path in data],
        "split": "rows with evaluation.held_out(row) false (4 in 5, by content hash)",
        "examples": len(examples),
        "examples_by_language": {
            language: sum(1 for job, _ in pairs if job.locale.startswith(language))
            for language in ("zh", "en")
        },
        "adapted_layers": len(layers),
        "steps": steps,
        "first_loss": round(sum(losses[: len(tail)]) / len(tail), 4),
        "final_loss": round(sum(tail) / len(tail), 4),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "device": str(device),
        "dtype": str(dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
    }
    lora.save(model, out, settings=settings.adapter, base_model=generator, metadata=metadata)
    return metadata
