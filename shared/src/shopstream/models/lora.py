"""Low-rank adapters (LoRA) for a model's linear layers: train them, save them, merge them.

An adapter is a directory with ``adapter.safetensors`` (per adapted layer ``<name>.lora_a``
of shape (rank, in) and ``<name>.lora_b`` of shape (out, rank)) and ``adapter.json`` (rank,
alpha, the base model it was trained on, and whatever the trainer recorded). Serving merges
it into the base weights once at load (``W += alpha / rank * B @ A``), so inference costs
exactly what the base model costs; ``digest`` names the adapter in lineage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "adapter.safetensors"
METADATA_FILE = "adapter.json"


class LoraLinear(torch.nn.Module):
    """A frozen linear layer plus a trainable low-rank update, for training only.

    The update is kept in fp32 while the base may be bf16: the product is small and the
    optimiser's steps on it are far below bf16's resolution.
    """

    def __init__(self, base: torch.nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.scale = alpha / rank
        device = base.weight.device
        self.lora_a = torch.nn.Parameter(torch.empty(rank, base.in_features, device=device))
        self.lora_b = torch.nn.Parameter(torch.zeros(base.out_features, rank, device=device))
        torch.nn.init.kaiming_uniform_(self.lora_a, a=5**0.5)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        update = (inputs.float() @ self.lora_a.T) @ self.lora_b.T
        result: torch.Tensor = self.base(inputs) + (update * self.scale).to(inputs.dtype)
        return result


@dataclass(frozen=True)
class AdapterSettings:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


def attach(model: torch.nn.Module, settings: AdapterSettings) -> list[str]:
    """Freeze `model` and wrap every linear layer whose last name is a target; their names."""
    for parameter in model.parameters():
        parameter.requires_grad = False
    wrapped: list[str] = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if child_name in settings.targets and isinstance(child, torch.nn.Linear):
                setattr(module, child_name, LoraLinear(child, settings.rank, settings.alpha))
                wrapped.append(f"{name}.{child_name}" if name else child_name)
    if not wrapped:
        raise ValueError(f"no linear layer named {settings.targets} to adapt")
    return wrapped


def _adapted(model: torch.nn.Module) -> Iterator[tuple[str, LoraLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, LoraLinear):
            yield name, module


def save(
    model: torch.nn.Module,
    directory: Path,
    *,
    settings: AdapterSettings,
    base_model: str,
    metadata: Mapping[str, Any],
) -> Path:
    """Write the adapter of a model `attach` prepared (fp16 weights: a few MB)."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in _adapted(model):
        tensors[f"{name}.lora_a"] = module.lora_a.detach().to(torch.float16).contiguous()
        tensors[f"{name}.lora_b"] = module.lora_b.detach().to(torch.float16).contiguous()
    save_file(tensors, str(directory / WEIGHTS_FILE))
    record = {
        "format": "shopstream-lora-1",
        "base_model": base_model,
        "rank": settings.rank,
        "alpha": settings.alpha,
        "targets": list(settings.targets),
        **metadata,
    }
    (directory / METADATA_FILE).write_text(
        json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return directory


def read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not an adapter: {METADATA_FILE} is missing")
    record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return record


def digest(directory: Path) -> str:
    """A short content hash of the adapter's weights, for lineage and the describer's cache."""
    return hashlib.sha256((directory / WEIGHTS_FILE).read_bytes()).hexdigest()[:12]


def merge(model: torch.nn.Module, directory: Path, *, expected_base: Sequence[str] = ()) -> int:
    """Add the adapter in `directory` to `model`'s weights in place; the number of layers.

    `expected_base`: model names the adapter may have been trained on (e.g. the registry
    name and the resolved id); a mismatch is refused, since an adapter only means something
    on the weights it was trained against.
    """
    record = read_metadata(directory)
    if expected_base and record.get("base_model") not in expected_base:
        raise ValueError(
            f"adapter {directory} was trained on {record.get('base_model')!r}, "
            f"not on {' / '.join(expected_base)}"
        )
    scale = float(record["alpha"]) / int(record["rank"])
    tensors = load_file(str(directory / WEIGHTS_FILE))
    modules = dict(model.named_modules())
    names = {key.rsplit(".", 1)[0] for key in tensors}
    for name in names:
        layer = modules.get(name)
        if not isinstance(layer, torch.nn.Linear):
            raise TypeError(f"adapter {directory} names {name!r}, which is not a linear layer")
        update = tensors[f"{name}.lora_b"].float() @ tensors[f"{name}.lora_a"].float()
        if update.shape != layer.weight.shape:
            raise ValueError(f"adapter layer {name!r} has shape {tuple(update.shape)}")
        with torch.no_grad():
            merged = layer.weight.float() + scale * update.to(layer.weight.device)
            layer.weight.copy_(merged.to(layer.weight.dtype))
    return len(names)


def export_peft(directory: Path, out: Path) -> Path:
    """Write the adapter in PEFT's layout, which serving engines load (vLLM ``--lora-modules``,
    TGI ``LORA_ADAPTERS``): ``adapter_config.json`` and ``adapter_model.safetensors`` with
    ``base_model.model.<layer>.lora_A.weight`` (rank, in) / ``lora_B.weight`` (out, rank)."""
    record = read_metadata(directory)
    tensors = load_file(str(directory / WEIGHTS_FILE))
    renamed = {}
    for key, value in tensors.items():
        layer, part = key.rsplit(".", 1)
        renamed[f"base_model.model.{layer}.{PEFT_NAMES[part]}.weight"] = value
    out.mkdir(parents=True, exist_ok=True)
    save_file(renamed, str(out / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": record["base_model"],
        "r": record["rank"],
        "lora_alpha": record["alpha"],
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "target_modules": record["targets"],
    }
    (out / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out


PEFT_NAMES = {"lora_a": "lora_A", "lora_b": "lora_B"}
