"""LoRA adapters: what training wraps is what serving merges, and a wrong base is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shopstream.models import lora


class TinyBlock(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = torch.nn.Linear(6, 6, bias=False)
        self.up_proj = torch.nn.Linear(6, 10)
        self.head = torch.nn.Linear(10, 3)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.head(self.up_proj(self.q_proj(inputs)))
        return result


def trained_block(seed: int = 0) -> tuple[TinyBlock, TinyBlock, torch.Tensor]:
    """A block with its adapter trained a few steps, a plain copy of its base, and inputs."""
    torch.manual_seed(seed)
    base = TinyBlock()
    plain = TinyBlock()
    plain.load_state_dict(base.state_dict())
    wrapped = lora.attach(base, lora.AdapterSettings(rank=2, alpha=4.0))
    assert sorted(wrapped) == ["q_proj", "up_proj"], "only the named linear layers are adapted"
    inputs = torch.randn(16, 6)
    target = torch.randn(16, 3)
    trainable = [p for p in base.parameters() if p.requires_grad]
    optimiser = torch.optim.SGD(trainable, lr=0.1)
    for _ in range(5):
        loss = torch.nn.functional.mse_loss(base(inputs), target)
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    return base, plain, inputs


def save_tiny(adapted: TinyBlock, directory: Path, **metadata: str) -> None:
    settings = lora.AdapterSettings(rank=2, alpha=4.0)
    lora.save(adapted, directory, settings=settings, base_model="tiny", metadata=metadata)


def test_only_the_adapter_trains() -> None:
    adapted, plain, _ = trained_block()
    assert all(not p.requires_grad for n, p in adapted.named_parameters() if "lora_" not in n)
    assert torch.equal(adapted.head.weight, plain.head.weight), "the base stays frozen"


def test_a_merged_adapter_reproduces_the_trained_outputs(tmp_path: Path) -> None:
    adapted, plain, inputs = trained_block()
    before = plain(inputs)
    save_tiny(adapted, tmp_path, note="test")
    assert lora.merge(plain, tmp_path, expected_base=("tiny",)) == 2
    with torch.no_grad():
        expected, merged = adapted(inputs), plain(inputs)
    assert not torch.allclose(before, merged, atol=1e-3), "the adapter changed the outputs"
    assert torch.allclose(expected, merged, atol=2e-3), "merge = base + the trained update"
    assert lora.read_metadata(tmp_path)["note"] == "test"
    assert len(lora.digest(tmp_path)) == 12


def test_an_adapter_for_another_base_is_refused(tmp_path: Path) -> None:
    adapted, plain, _ = trained_block()
    save_tiny(adapted, tmp_path)
    with pytest.raises(ValueError, match="trained on 'tiny'"):
        lora.merge(plain, tmp_path, expected_base=("qwen",))


def test_an_adapter_whose_layers_do_not_fit_is_refused(tmp_path: Path) -> None:
    adapted, _, _ = trained_block()
    save_tiny(adapted, tmp_path)

    class Other(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q_proj = torch.nn.Linear(4, 4)
            self.up_proj = torch.nn.Linear(4, 4)

    with pytest.raises(ValueError, match="shape"):
        lora.merge(Other(), tmp_path)


def test_a_directory_without_metadata_is_not_an_adapter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"adapter\.json"):
        lora.merge(TinyBlock(), tmp_path)


def test_a_model_without_target_layers_cannot_be_adapted() -> None:
    with pytest.raises(ValueError, match="no linear layer"):
        lora.attach(torch.nn.Sequential(torch.nn.Linear(2, 2)), lora.AdapterSettings())


def test_the_peft_export_names_every_layer_as_peft_does(tmp_path: Path) -> None:
    adapted, _, _ = trained_block()
    save_tiny(adapted, tmp_path / "ours")
    lora.export_peft(tmp_path / "ours", tmp_path / "peft")
    exported = load_file(str(tmp_path / "peft" / "adapter_model.safetensors"))
    assert set(exported) == {
        f"base_model.model.{layer}.lora_{part}.weight"
        for layer in ("q_proj", "up_proj")
        for part in ("A", "B")
    }
    assert exported["base_model.model.up_proj.lora_A.weight"].shape == (2, 6)
    assert exported["base_model.model.up_proj.lora_B.weight"].shape == (10, 2)
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["peft_type"] == "LORA"
    assert (config["r"], config["lora_alpha"], config["base_model_name_or_path"]) == (
        2,
        4.0,
        "tiny",
    )
