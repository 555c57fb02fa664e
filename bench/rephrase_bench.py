"""Responder rephrasing benchmark: seconds per answer and the support check's verdicts.

``Rephraser.rephrase`` (generation, then the support check) over ``--per-language`` Chinese
answers (the articles of ``tests/eval/data/responder_faq_zh.json``, one question after another
from each in turn; the article is the answer and the passage) and English ones (the first
placeholder-free reply per intent of the Bitext customer-support CSV, cut between sentences to
480 characters like a passage; the cut reply is the answer and the passage), timed per
language after the model is loaded, at the service's batch size. Every raw reply and verdict
goes to ``--json``, so the check can be studied without generating again.

    uv run --frozen python bench/rephrase_bench.py [--generator qwen2.5-coder-0.5b-instruct]
        [--languages en zh] [--per-language 16] [--batch-size 8] [--max-new-tokens 96]
        [--threads 2] [--bitext ../shared/data/responder/bitext_support_en.csv] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from shopstream.models import TextGenerator, configure_threads
from shopstream_responder.config import RephraseConfig
from shopstream_responder.rephrase import Rephraser, RephraseRequest, check_support, rejection
from shopstream_responder.text import detect_locale, split_sentences

ROOT = Path(__file__).resolve().parent.parent
FAQ_ZH = ROOT / "tests" / "eval" / "data" / "responder_faq_zh.json"
BITEXT_EN = ROOT.parent / "shared" / "data" / "responder" / "bitext_support_en.csv"
PASSAGE_CHARS = 480


class RecordingGenerator:
    """A ``TextGenerator`` that keeps its raw replies, which the rephraser drops when rejected."""

    def __init__(self, generator: TextGenerator) -> None:
        self.inner = generator
        self.model_id = generator.model_id
        self.revision = generator.revision
        self.replies: list[str] = []

    def load(self) -> object:
        report = self.inner.load()
        self.revision = self.inner.revision
        return report

    def generate(
        self,
        prompts: Sequence[Sequence[Mapping[str, str]]],
        *,
        max_new_tokens: int = 128,
        batch_size: int = 8,
    ) -> list[str]:
        replies = self.inner.generate(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
        self.replies += replies
        return replies

    def unload(self) -> None:
        self.inner.unload()


def chinese_requests(limit: int) -> list[RephraseRequest]:
    data = json.loads(FAQ_ZH.read_text(encoding="utf-8"))
    articles = [
        (paragraph["context"], [qa["question"] for qa in paragraph["qas"]])
        for article in data["data"]
        for paragraph in article["paragraphs"]
        if paragraph["context"]
    ]
    requests: list[RephraseRequest] = []
    for turn in range(max(len(questions) for _, questions in articles)):
        for context, questions in articles:
            if turn < len(questions) and len(requests) < limit:
                requests.append(RephraseRequest(questions[turn], context, (context,), "zh"))
    return requests


def english_requests(path: Path, limit: int) -> list[RephraseRequest]:
    chosen: dict[str, tuple[str, str]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["intent"] not in chosen and "{{" not in row["response"]:
                chosen[row["intent"]] = (row["instruction"], row["response"])
    requests = []
    for intent in sorted(chosen)[:limit]:
        question, response = chosen[intent]
        answer = ""
        for sentence in split_sentences(response):
            if answer and len(answer) + 1 + len(sentence) > PASSAGE_CHARS:
                break
            answer = f"{answer} {sentence}".strip()
        requests.append(RephraseRequest(question, answer, (answer,), "en"))
    return requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--generator", default=RephraseConfig().generator)
    parser.add_argument("--languages", nargs="+", default=["en", "zh"])
    parser.add_argument("--per-language", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=RephraseConfig().max_new_tokens)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bitext", type=Path, default=BITEXT_EN)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    configure_threads(args.threads)
    config = RephraseConfig(
        enabled=True,
        generator=args.generator,
        languages=frozenset(args.languages),
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
    )
    generator = RecordingGenerator(TextGenerator(config.generator, device=config.device))
    rephraser = Rephraser(config, generator)
    began = time.perf_counter()
    rephraser.load()
    load_seconds = time.perf_counter() - began
    print(f"{rephraser.revision} loaded in {load_seconds:.1f} s, load average {os.getloadavg()}")
    results: dict[str, Any] = {
        "generator": rephraser.revision,
        "load_seconds": load_seconds,
        "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "languages": {},
    }
    for language in args.languages:
        requests = (
            chinese_requests(args.per_language)
            if language == "zh"
            else english_requests(args.bitext, args.per_language)
        )
        generator.replies.clear()
        began = time.perf_counter()
        kept = rephraser.rephrase(requests)
        seconds = time.perf_counter() - began
        answers = []
        for request, raw, reply in zip(requests, generator.replies, kept, strict=True):
            text = " ".join(raw.split())
            check = check_support(text, request.passages, config.min_term_share)
            answers.append(
                {
                    "question": request.question,
                    "answer": request.answer,
                    "raw": raw,
                    "reply_language": detect_locale(text),
                    "accepted": reply is not None,
                    "rejection": rejection(text, request, config.min_term_share),
                    "unsupported": list(check.unsupported_sentences),
                }
            )
        accepted = sum(1 for reply in kept if reply is not None)
        results["languages"][language] = {
            "answers": len(requests),
            "seconds": seconds,
            "seconds_per_answer": seconds / len(requests),
            "accepted": accepted,
            "rejected": len(requests) - accepted,
            "details": answers,
        }
        print(
            f"{language}: {len(requests)} answers in {seconds:.1f} s "
            f"({seconds / len(requests):.2f} s/answer), accepted {accepted}, "
            f"rejected {len(requests) - accepted}; load average {os.getloadavg()}"
        )
    rephraser.unload()
    if args.json is not None:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
