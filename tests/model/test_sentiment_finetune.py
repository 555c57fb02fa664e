"""Fine-tuning the encoder's top layers: a short real run on the packaged encoder, then the
service loads the shipped layers and scores exactly what training scored.

The labelled rows come from the package's own sample reviews (rating >= 4 positive, <= 2
negative), so the test needs nothing outside the repository.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from shopstream.models import DEFAULT_ENCODER, LayerStack, TextEncoder, transformer_layers
from shopstream_sentiment.backends import EncoderHeadBackend, tuned_from
from shopstream_sentiment.config import SentimentModelConfig
from shopstream_sentiment.finetune import FinetuneOptions, WeightAverage
from shopstream_sentiment.head import FloatArray, SentimentHead, language_group, pool_passages
from shopstream_sentiment.scoring import ScoringUnit, unique_passages
from shopstream_sentiment.segmentation import chunk_text
from shopstream_sentiment.train import TrainingResult, TrainOptions, train_head

pytestmark = pytest.mark.model

SAMPLES = (
    Path(__file__).parents[2]
    / "services/sentiment/src/shopstream_sentiment/data/sample_reviews.jsonl"
)


def labelled_samples(path: Path) -> Path:
    with SAMPLES.open(encoding="utf-8") as lines, path.open("w", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["label", "rating", "text"])
        for line in lines:
            row = json.loads(line)
            if row["rating"] in {None, 3}:
                continue
            label = "positive" if row["rating"] >= 4 else "negative"
            writer.writerow([label, row["rating"], row["text"]])
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainingResult]:
    directory = tmp_path_factory.mktemp("finetune")
    options = TrainOptions(
        lexical_bits=0,
        folds=3,
        embedding_c=(0.01,),
        device="cpu",
        finetune=FinetuneOptions(layers=1, epochs=1, learning_rate=1e-3),
        dev_fraction=0.25,
    )
    data = labelled_samples(directory / "samples.csv")
    return directory / "head", train_head([data], directory / "head", options, "test")


def test_the_head_ships_the_tuned_layer_and_records_the_run(
    trained: tuple[Path, TrainingResult],
) -> None:
    directory, result = trained
    head = SentimentHead.load(directory)
    encoder = TextEncoder(DEFAULT_ENCODER, device="cpu")
    encoder.load()
    parameters = dict(encoder.loaded_model().named_parameters())
    last = max(int(name.split(".")[2]) for name in parameters if name.startswith("encoder.layer."))
    layer = {n: p for n, p in parameters.items() if n.startswith(f"encoder.layer.{last}.")}
    encoder.unload()
    assert set(head.encoder_weights) == set(layer)
    # A few AdamW steps move weights by about the learning rate; float16 rounds by far less.
    changed = [
        name
        for name, value in head.encoder_weights.items()
        if np.abs(value.astype(np.float32) - layer[name].detach().numpy()).max() > 5e-4
    ]
    assert changed, "training left the top layer as it was"
    record = result.metadata["encoder"]["fine_tuned"]
    assert record["layers"] == 1
    assert record["first_layer"] == last
    assert record["kept_epoch"] == 1
    assert record["dev_rows"] > 0
    assert record["train_rows"] + record["dev_rows"] == sum(
        g["train_rows"] + g["dev_rows"]
        for name, g in result.metadata["language_groups"].items()
        if name in result.metadata["groups"]
    )
    assert "dev rows" in result.metadata["calibration"]
    for group in result.metadata["groups"]:
        record = result.metadata["language_groups"][group]
        assert 0.0 <= record["dev_expected_calibration_error"] <= 1.0
        assert 0.0 <= record["dev_accuracy"] <= 1.0


def held_out_units(result: TrainingResult, backend: EncoderHeadBackend) -> list[ScoringUnit]:
    chunking = backend.chunking
    return [
        ScoringUnit(
            text=r.text,
            passages=tuple(
                c.text for c in chunk_text(r.text, chunking.chunk_tokens, chunking.max_chunks)
            ),
            group=language_group(r.text),
        )
        for r in result.held_out
    ]


def served(config: SentimentModelConfig, result: TrainingResult) -> tuple[FloatArray, FloatArray]:
    backend = EncoderHeadBackend(config)
    backend.load()
    probabilities, vectors = backend.score(held_out_units(result, backend))
    backend.unload()
    assert vectors is not None
    return probabilities, vectors


def test_the_service_scores_what_training_scored(trained: tuple[Path, TrainingResult]) -> None:
    directory, result = trained
    assert result.held_out_probabilities is not None
    config = SentimentModelConfig(head=directory, device="cpu")
    probabilities, aspect_vectors = served(config, result)
    # Training scored from float16-cached layer inputs; serving runs the whole encoder.
    assert np.allclose(probabilities, result.held_out_probabilities, atol=0.02)

    # Aspects are matched on the frozen layers' vectors by default, the tuned ones on request.
    frozen = TextEncoder(DEFAULT_ENCODER, device="cpu")
    frozen.load()
    passages, groups = unique_passages(held_out_units(result, EncoderHeadBackend(config)))
    frozen_vectors = pool_passages(frozen.encode(passages, kind="query"), groups)
    frozen.unload()
    assert np.allclose(aspect_vectors, frozen_vectors, atol=1e-4)
    tuned = config.model_copy(update={"aspect_vectors": "tuned"})
    tuned_probabilities, tuned_vectors = served(tuned, result)
    assert np.array_equal(tuned_probabilities, probabilities)
    assert not np.allclose(tuned_vectors, frozen_vectors, atol=1e-3)


def test_a_branch_of_the_same_layers_encodes_what_the_model_encodes() -> None:
    encoder = TextEncoder(DEFAULT_ENCODER, device="cpu")
    encoder.load()
    layers = transformer_layers(encoder.loaded_model())
    branch = LayerStack(copy.deepcopy(layers[-3:]))
    texts = ["质量很好，物流也快。", "It broke after a day.", "还行吧"]
    vectors, branched = encoder.encode_with_branch(texts, branch, batch_size=2)
    encoder.unload()
    assert branched.shape == vectors.shape == (3, encoder.dim)
    assert np.allclose(vectors, branched, atol=1e-5)


def test_tuned_weights_must_be_a_top_block() -> None:
    assert tuned_from({"encoder.layer.10.a": 0, "encoder.layer.11.b": 0}, 12) == 10
    with pytest.raises(ValueError, match="top block"):
        tuned_from({"encoder.layer.9.a": 0, "encoder.layer.11.b": 0}, 12)
    with pytest.raises(ValueError, match="top block"):
        tuned_from({"embeddings.word_embeddings.weight": 0}, 12)


def test_replacing_weights_checks_names_and_shapes() -> None:
    encoder = TextEncoder(DEFAULT_ENCODER, device="cpu")
    encoder.load()
    name, parameter = next(iter(encoder.loaded_model().named_parameters()))
    with pytest.raises(ValueError, match="no parameter"):
        encoder.replace_weights({"encoder.layer.99.output.dense.weight": np.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        encoder.replace_weights({name: np.zeros((1, 1), dtype=np.float16)})
    replacement = np.full(tuple(parameter.shape), 0.5, dtype=np.float16)
    encoder.replace_weights({name: replacement})
    assert float(dict(encoder.loaded_model().named_parameters())[name].detach().mean()) == 0.5
    encoder.unload()


def test_the_weight_average_follows_training_and_swaps_in_and_back() -> None:
    torch.manual_seed(0)
    tuned, heads = torch.nn.Linear(3, 3), torch.nn.Linear(3, 1)
    start = [p.detach().clone() for p in (*tuned.parameters(), *heads.parameters())]
    average = WeightAverage(tuned, heads, decay=0.5)
    moves = []
    for step in range(3):
        with torch.no_grad():
            for parameter in (*tuned.parameters(), *heads.parameters()):
                parameter.add_(1.0)
        moves.append(min(0.5, (1 + step) / (10 + step)))
        average.update(step)
    # By hand: avg = d * avg + (1 - d) * current, each step moving the weights by 1.
    expected_shift = 0.0
    for step, decay in enumerate(moves):
        expected_shift = decay * expected_shift + (1 - decay) * (step + 1)
    trained = [p.detach().clone() for p in (*tuned.parameters(), *heads.parameters())]
    with average.swapped_in():
        for parameter, first in zip((*tuned.parameters(), *heads.parameters()), start, strict=True):
            assert torch.allclose(parameter, first + expected_shift)
    for parameter, value in zip((*tuned.parameters(), *heads.parameters()), trained, strict=True):
        assert torch.equal(parameter, value)
    with average.swapped_in(False):
        assert torch.equal(next(tuned.parameters()), trained[0])


def test_no_average_means_no_candidate_and_a_bad_decay_is_refused() -> None:
    tuned, heads = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    assert not WeightAverage(tuned, heads, decay=0.0).enabled
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(tuned, heads, decay=1.0)
