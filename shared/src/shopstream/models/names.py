"""The built-in models' registry names, importable without torch.

Service settings name their default models from here: the registry itself
(``shopstream.models.registry``) imports transformers and torch, which a settings module, a CLI
or a unit test should not pay for.
"""

from __future__ import annotations

DEFAULT_ENCODER = "multilingual-e5-small"
"""Multilingual sentence encoder (Chinese and English), the default of every service."""
ENGLISH_ENCODER = "all-minilm-l6-v2"
"""English-only sentence encoder, blended in for English questions by the responder."""
DEFAULT_GENERATOR = "qwen2.5-coder-0.5b-instruct"
"""Writes Chinese and English; installed by default (478 MB of wheels)."""
LARGE_GENERATOR = "qwen2.5-coder-1.5b-instruct"
"""Optional (``shopstream-describer[qwen-1-5b]``, 1.09 GB): more fluent, a third of the speed."""
SMALL_GENERATOR = "smollm2-135m-instruct"
"""English only and about four times faster than the 0.5B: for CPU-bound English-only use."""
