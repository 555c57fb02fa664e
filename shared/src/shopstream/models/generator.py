"""Text generation with decoder-only models: chat template, left padding, batched decoding."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol, cast

import torch
from transformers import AutoModelForCausalLM, DynamicCache, LogitsProcessorList, PretrainedConfig
from transformers.tokenization_utils_base import PreTrainedTokenizerBase

from shopstream.models import lora
from shopstream.models.batching import length_sorted_batches, pad_batch, padded_batches
from shopstream.models.device import inference_dtype
from shopstream.models.names import DEFAULT_GENERATOR
from shopstream.models.ngram_blocker import CompletionNgramBlocker
from shopstream.models.phrase_ban import PhraseBan, PhraseVocabulary
from shopstream.models.prefix_cache import PrefixCache, template_batches
from shopstream.models.pretrained import Pretrained, PretrainedHandle

ChatMessage = Mapping[str, str]
Prompt = str | Sequence[ChatMessage]


class CausalLanguageModel(Protocol):
    """What generation needs from a transformers causal LM.

    transformers annotates ``generate`` for another type checker (its ``self`` is a protocol
    mypy cannot match), so the model is seen through this narrower, accurate interface.
    """

    config: PretrainedConfig

    def generate(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_processor: LogitsProcessorList,
        past_key_values: DynamicCache | None,
        **options: float,
    ) -> torch.Tensor: ...

    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        past_key_values: DynamicCache | None = None,
        use_cache: bool = False,
    ) -> CausalLanguageModelOutput: ...


class CausalLanguageModelOutput(Protocol):
    logits: torch.Tensor


class TextGenerator(PretrainedHandle):
    """Generate continuations for a batch of prompts.

    A prompt is a plain string (sent as one user turn) or a list of chat messages
    (``{"role": ..., "content": ...}``). With a chat template, the template renders it and
    appends the assistant turn; without one, plain strings are used as they are.
    """

    role = "generator"
    auto_class = AutoModelForCausalLM

    def __init__(
        self,
        model: str = DEFAULT_GENERATOR,
        *,
        device: str = "auto",
        max_input_tokens: int = 2048,
        revision: str | None = None,
        half_on_gpu: bool = True,
        adapter: Path | None = None,
        threads: int | None = None,
        share_prompt_prefix: bool = True,
    ) -> None:
        """`adapter`: a LoRA adapter directory (`shopstream.models.lora`) merged at load;
        `threads`: torch's intra-op threads, set at load (None leaves them);
        `share_prompt_prefix`: run a batch's common prompt start once (`prefix_cache`)."""
        super().__init__(model, revision=revision, device=device, threads=threads)
        self.adapter = adapter
        self.max_input_tokens = max_input_tokens
        self._half_on_gpu = half_on_gpu
        self._phrase_vocabulary: PhraseVocabulary | None = None
        self._prefix_cache = PrefixCache() if share_prompt_prefix else None

    def _dtype(self, device: torch.device) -> torch.dtype:
        return inference_dtype(device, half_on_gpu=self._half_on_gpu, bf16_on_cpu=True)

    def _loaded(self, loaded: Pretrained) -> str:
        if self.adapter is None:
            return loaded.revision
        lora.merge(
            loaded.model, self.adapter, expected_base=(self.model_id, loaded.resolved.model_id)
        )
        return f"{loaded.revision}+lora-{lora.digest(self.adapter)}"

    def _causal_parts(
        self,
    ) -> tuple[CausalLanguageModel, PreTrainedTokenizerBase, torch.device]:
        model, tokenizer, device = self._parts()
        return cast("CausalLanguageModel", model), tokenizer, device

    def _prompt_ids(self, tokenizer: PreTrainedTokenizerBase, prompt: Prompt) -> list[int]:
        if tokenizer.chat_template:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            rendered = tokenizer.apply_chat_template(
                [dict(message) for message in messages], add_generation_prompt=True, tokenize=False
            )
            ids: list[int] = tokenizer(str(rendered), add_special_tokens=False)["input_ids"]
        elif isinstance(prompt, str):
            ids = tokenizer(prompt)["input_ids"]
        else:
            raise ValueError(f"{self.model_id} has no chat template; pass plain string prompts")
        # Keep the end: it holds the instruction's last words and the assistant turn marker.
        return ids[-self.max_input_tokens :]

    def generate(
        self,
        prompts: Sequence[Prompt],
        *,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 0.7,
        top_p: float = 0.9,
        repetition_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        seed: int | None = None,
        batch_size: int = 8,
        banned_phrases: Sequence[Sequence[str]] | None = None,
    ) -> list[str]:
        """Return one completion per prompt, in the prompts' order, special tokens removed.

        ``seed`` reseeds torch's global generator before decoding, so sampled output repeats for
        the same prompts and settings. Sampling parameters are ignored under greedy decoding.
        ``banned_phrases`` (one list per prompt) steers each completion away from its phrases
        (see ``phrase_ban``).
        """
        if isinstance(prompts, str):
            raise TypeError("generate() takes a sequence of prompts; wrap a single one in a list")
        model, tokenizer, device = self._causal_parts()
        if not prompts:
            return []
        if seed is not None:
            torch.manual_seed(seed)
        options: dict[str, float] = {
            "max_new_tokens": max_new_tokens,
            "do_sample": do_sample,
            "repetition_penalty": repetition_penalty,
        }
        if do_sample:
            options |= {"temperature": temperature, "top_p": top_p}
        pad_id = self._pad_id(tokenizer)
        prompt_ids = [self._prompt_ids(tokenizer, prompt) for prompt in prompts]
        completions = [""] * len(prompts)
        batches = (
            template_batches(prompt_ids, batch_size)
            if self._prefix_cache is not None
            else length_sorted_batches([len(ids) for ids in prompt_ids], batch_size)
        )
        with torch.inference_mode():
            for batch in batches:
                input_ids, attention_mask, past = self._batch_inputs(
                    model, [prompt_ids[i] for i in batch], pad_id, device
                )
                # ``no_repeat_ngram_size`` applies to the completion only (see ngram_blocker).
                processors = LogitsProcessorList(
                    [CompletionNgramBlocker(no_repeat_ngram_size, input_ids.shape[1])]
                    if no_repeat_ngram_size
                    else []
                )
                if banned_phrases is not None and any(banned_phrases[i] for i in batch):
                    processors.append(
                        PhraseBan(
                            self._vocabulary(tokenizer),
                            [banned_phrases[i] for i in batch],
                            input_ids.shape[1],
                        )
                    )
                generated = model.generate(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    pad_token_id=pad_id,
                    logits_processor=processors,
                    past_key_values=past,
                    **options,
                )
                new_tokens = generated[:, input_ids.shape[1] :]
                texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for index, text in zip(batch, texts, strict=True):
                    completions[index] = text.strip()
        return completions

    def yes_no_log_odds(
        self,
        prompts: Sequence[Prompt],
        *,
        yes: Sequence[str] = ("yes", "Yes"),
        no: Sequence[str] = ("no", "No"),
        batch_size: int = 8,
    ) -> list[float]:
        """Per prompt, log P(the reply starts with a ``yes`` word) minus log P(a ``no`` word),
        from one forward pass (no decoding): a model's verdict on a yes/no question, and how
        sure it is."""
        model, tokenizer, device = self._causal_parts()
        yes_ids = sorted({tokenizer.encode(word, add_special_tokens=False)[0] for word in yes})
        no_ids = sorted({tokenizer.encode(word, add_special_tokens=False)[0] for word in no})
        pad_id = self._pad_id(tokenizer)
        prompt_ids = [self._prompt_ids(tokenizer, prompt) for prompt in prompts]
        odds = [0.0] * len(prompts)
        with torch.inference_mode():
            for batch, input_ids, attention_mask in padded_batches(
                prompt_ids, pad_id, batch_size, side="left"
            ):
                logits = (
                    model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device))
                    .logits[:, -1]
                    .float()
                )
                log_probs = torch.log_softmax(logits, dim=-1)
                verdicts = torch.logsumexp(log_probs[:, yes_ids], dim=-1) - torch.logsumexp(
                    log_probs[:, no_ids], dim=-1
                )
                for index, verdict in zip(batch, verdicts.tolist(), strict=True):
                    odds[index] = float(verdict)
        return odds

    def _batch_inputs(
        self,
        model: CausalLanguageModel,
        rows: list[list[int]],
        pad_id: int,
        device: torch.device,
    ) -> tuple[torch.Tensor, torch.Tensor, DynamicCache | None]:
        """One batch's input ids and mask on the device, and the cache of the prompts' common
        start when they share one (``prefix_cache``); else plain left padding."""
        if self._prefix_cache is not None:
            shared = self._prefix_cache.batch_inputs(model, rows, pad_id, device)
            if shared is not None:
                return shared
        input_ids, attention_mask = pad_batch(rows, pad_id, side="left")
        return input_ids.to(device), attention_mask.to(device), None

    def _pad_id(self, tokenizer: PreTrainedTokenizerBase) -> int:
        """Left padding takes the pad token, else the end-of-sequence token (as Qwen's)."""
        pad_id = tokenizer.pad_token_id
        if pad_id is None:
            pad_id = tokenizer.eos_token_id
        if pad_id is None:
            raise ValueError(f"{self.model_id} has neither a pad nor an end-of-sequence token")
        return int(pad_id)

    def _vocabulary(self, tokenizer: PreTrainedTokenizerBase) -> PhraseVocabulary:
        if self._phrase_vocabulary is None:
            self._phrase_vocabulary = PhraseVocabulary(tokenizer)
        return self._phrase_vocabulary

    def unload(self) -> None:
        self._phrase_vocabulary = None
        if self._prefix_cache is not None:
            self._prefix_cache = PrefixCache()
        super().unload()
