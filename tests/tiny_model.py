"""A tiny random-weight llama GGUF model for fast, offline engine tests.

`write_tiny_model(path)` writes a ~350 KB llama-architecture GGUF (2 layers, hidden
size 64, f16 weights) with a small SentencePiece-style vocabulary. llama.cpp loads it in
milliseconds and generates thousands of tokens per second, so tests can exercise
tokenization, sampling, streaming, stop strings and chat templates against the real
engine without any download. The same arguments always give a byte-identical file.

Vocabulary (llama.cpp tokenizer model "llama": SentencePiece with byte fallback):

* `<unk>`, `<s>` (BOS, added to every prompt), `</s>`, the 256 byte tokens
  `<0x00>`..`<0xFF>`, and the ChatML control tokens `<|im_start|>` and `<|im_end|>`;
* normal pieces: "▁" (a space), every printable ASCII character, and "▁" + common
  English words, plus a few fragments, each with all its prefixes (SentencePiece only
  merges adjacent pieces into pieces it knows, so "▁the" is reached through "▁t" and
  "▁th"). Longer pieces score higher, so English words become single tokens; anything
  else falls back to byte tokens and still round-trips.

EOS is `<|im_end|>`, with or without a chat template: it ends a ChatML turn, and
llama.cpp treats it (and `</s>`) as end-of-generation either way.

How random weights still give printable, varied text:

* A bias channel. Hidden channel 0 holds the same positive constant in every token
  embedding, and no block writes to it (those rows of `attn_output` and `ffn_down` are
  zero), so it stays positive after the final RMS norm at every position. The output
  rows of the tokens that must not be generated (`<unk>`, `<s>`, `</s>`, `<|im_start|>`
  and every byte that is not printable ASCII or a newline) hold a large negative weight
  on that channel and zeros elsewhere, so their logits sit ~40 below the best normal
  token's whatever the context. Without this, sampled lone bytes such as `<0xE4>` never
  form valid UTF-8 and the library holds streamed text back until the end.
* EOS possible but rare. The EOS row is all zeros: a constant logit of 0, in the middle
  of the normal tokens' logits (~9 below the best). Greedy decoding never ends early and
  sampling almost never does, so generations run to `max_tokens`; a `logit_bias` on EOS
  makes it end them.
* With `answers_briefly`, a model that ends its turn after one token (for clients that
  must see a turn end: Claude Code treats a reply cut by max_tokens as an error). A second
  constant channel holds -1 in the newline byte's embedding and +1 in every other one, no
  block writes to it, and the EOS row weighs it heavily: after the prompt's last "\n" EOS
  is impossible, after any other token it is all but certain.
* A repetition penalty built into the weights. Layer 0 has zero queries and keys, so its
  attention adds the average embedding of the whole context to the residual stream, and
  each normal token's output row is random minus a multiple of its own embedding: a
  token that was just read, or fills much of the context, gets a lower logit. Greedy
  text walks through many different tokens instead of settling into a short loop.
"""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

import gguf
import numpy as np

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n'"
    " + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 96
RMS_EPS = 1e-5
ROPE_FREQ_BASE = 10000.0

# The tricks from the module docstring, tuned by measuring logits of generated text.
BIAS_CHANNEL = 0
TURN_CHANNEL = 1  # answers_briefly: which token was read last (newline or not)
TURN_WEIGHT = 30.0  # EOS output weight on that channel
BIAS_GAIN = 8.0  # output-norm weight on the bias channel: sharpens the ban
BANNED_WEIGHT = -20.0  # output weight of banned tokens on the bias channel
LOGIT_STD = 0.35  # std of the random part of the normal tokens' output rows
SELF_PENALTY = 0.15  # share of its own embedding subtracted from a token's output row
CONTEXT_GAIN = 4.0  # weight of layer 0's context average in the residual stream

UNK, BOS, EOS = "<unk>", "<s>", "<|im_end|>"
ALLOWED_BYTES = frozenset(range(0x20, 0x7F)) | {0x0A}  # printable ASCII and newline
WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have
this from or had by word but what some we can out other were all there when up use your
how said an each she which do their time if will way about many then them would like so
these her make see him has look more day could go come did no most people my over know
water than call first who may down been now find new work part take get made where after
back little only year came show good me give our under name very just great think say
help line right too same tell set three want well also small end put home read hand
large add here must big high why ask need house try again point world test model token
text hello chat The This It What Hello
"""
FRAGMENTS = "ing ed er es ly ion th he in an re on at en st or ou ar al le"


@dataclass(frozen=True)
class Vocab:
    """The tokenizer tables, indexed by token id."""

    pieces: tuple[str, ...]
    scores: tuple[float, ...]
    types: tuple[gguf.TokenType, ...]
    banned: frozenset[int]  # ids that must (almost) never be generated

    def id(self, piece: str) -> int:
        return self.pieces.index(piece)


def build_vocab() -> Vocab:
    """The token list in id order, with SentencePiece scores and token types."""
    kind = gguf.TokenType
    entries = [(UNK, kind.UNKNOWN), (BOS, kind.CONTROL), ("</s>", kind.CONTROL)]
    entries += [(f"<0x{byte:02X}>", kind.BYTE) for byte in range(256)]
    entries += [("<|im_start|>", kind.CONTROL), ("<|im_end|>", kind.CONTROL)]
    entries += [(piece, kind.NORMAL) for piece in _normal_pieces()]
    pieces = tuple(piece for piece, _ in entries)
    types = tuple(token_type for _, token_type in entries)
    # Longer pieces merge first; among equal lengths the earlier (more common) one wins.
    scores = tuple(
        len(piece) - 1e-4 * i if token_type == kind.NORMAL else 0.0
        for i, (piece, token_type) in enumerate(entries)
    )
    banned = frozenset(
        i
        for i, (piece, token_type) in enumerate(entries)
        if (token_type in (kind.UNKNOWN, kind.CONTROL) and piece != EOS)
        or (token_type == kind.BYTE and int(piece[3:5], 16) not in ALLOWED_BYTES)
    )
    return Vocab(pieces, scores, types, banned)


def _normal_pieces() -> list[str]:
    pieces = ["▁"] + [chr(code) for code in range(0x21, 0x7F)]
    for word in WORDS.split():
        pieces += _prefixes("▁" + word)
    for fragment in FRAGMENTS.split():
        pieces += _prefixes(fragment)
    return list(dict.fromkeys(pieces))  # drop duplicates, keep first positions


def _prefixes(piece: str) -> list[str]:
    return [piece[:n] for n in range(2, len(piece) + 1)]


def build_weights(vocab: Vocab, seed: int, answers_briefly: bool = False) -> dict[str, np.ndarray]:
    """All tensors, by llama.cpp name; a matrix's numpy shape is (outputs, inputs)."""
    rng = np.random.default_rng(seed)
    embeddings = _normal(rng, len(vocab.pieces), N_EMBD, 1.0)
    embeddings[:, BIAS_CHANNEL] = 1.0
    constant = [BIAS_CHANNEL]
    if answers_briefly:
        embeddings[:, TURN_CHANNEL] = 1.0
        embeddings[vocab.id("<0x0A>"), TURN_CHANNEL] = -1.0
        constant.append(TURN_CHANNEL)
    tensors = {"token_embd.weight": embeddings}
    for layer in range(N_LAYER):
        blocks = _context_average_block() if layer == 0 else _random_attention_block(rng)
        blocks |= _feed_forward_block(rng)
        # No block writes to the constant channels: they keep the token's own value.
        blocks["attn_output"][constant] = 0.0
        blocks["ffn_down"][constant] = 0.0
        tensors |= {f"blk.{layer}.{name}.weight": w for name, w in blocks.items()}
    output_norm = np.ones(N_EMBD, dtype=np.float32)
    output_norm[BIAS_CHANNEL] = BIAS_GAIN
    tensors["output_norm.weight"] = output_norm
    output = _output_weights(rng, vocab, embeddings)
    if answers_briefly:
        output[:, TURN_CHANNEL] = 0.0
        output[vocab.id(EOS), TURN_CHANNEL] = TURN_WEIGHT
    tensors["output.weight"] = output
    # Norm weights must stay float32; matrices are stored as f16 to halve the file.
    return {name: w if w.ndim == 1 else w.astype(np.float16) for name, w in tensors.items()}


def _normal(rng: np.random.Generator, rows: int, cols: int, std: float) -> np.ndarray:
    return rng.normal(0.0, std, size=(rows, cols)).astype(np.float32)


def _context_average_block() -> dict[str, np.ndarray]:
    """Zero queries and keys: every head attends evenly to the whole context."""
    zeros = np.zeros((N_EMBD, N_EMBD), dtype=np.float32)
    identity = np.eye(N_EMBD, dtype=np.float32)
    return {
        "attn_norm": np.ones(N_EMBD, dtype=np.float32),
        "attn_q": zeros,
        "attn_k": zeros.copy(),
        "attn_v": identity,
        "attn_output": CONTEXT_GAIN * identity,
    }


def _random_attention_block(rng: np.random.Generator) -> dict[str, np.ndarray]:
    std = N_EMBD**-0.5
    return {
        "attn_norm": np.ones(N_EMBD, dtype=np.float32),
        "attn_q": _normal(rng, N_EMBD, N_EMBD, std),
        "attn_k": _normal(rng, N_EMBD, N_EMBD, std),
        "attn_v": _normal(rng, N_EMBD, N_EMBD, std),
        "attn_output": _normal(rng, N_EMBD, N_EMBD, std),
    }


def _feed_forward_block(rng: np.random.Generator) -> dict[str, np.ndarray]:
    std = N_EMBD**-0.5
    return {
        "ffn_norm": np.ones(N_EMBD, dtype=np.float32),
        "ffn_gate": _normal(rng, N_FF, N_EMBD, std),
        "ffn_up": _normal(rng, N_FF, N_EMBD, std),
        "ffn_down": _normal(rng, N_EMBD, N_FF, 0.5 * N_FF**-0.5),
    }


def _output_weights(rng: np.random.Generator, vocab: Vocab, embeddings: np.ndarray) -> np.ndarray:
    output = _normal(rng, len(vocab.pieces), N_EMBD, LOGIT_STD) - SELF_PENALTY * embeddings
    output[:, BIAS_CHANNEL] = 0.0
    output[vocab.id(EOS)] = 0.0
    banned = sorted(vocab.banned)
    output[banned] = 0.0
    output[banned, BIAS_CHANNEL] = BANNED_WEIGHT
    return output


def write_tiny_model(
    path: str | os.PathLike[str],
    *,
    chat_template: str | None = CHATML_TEMPLATE,
    seed: int = 0,
    n_ctx_train: int = 2048,
    name: str = "tiny",
    answers_briefly: bool = False,
    heads: int = N_HEAD,
) -> pathlib.Path:
    """Write the tiny model (see the module docstring) to `path`; return the path.

    `heads`: attention heads (of N_EMBD / heads values each). A quantized KV cache (q8_0,
    q4_0) stores heads in blocks of 32 values, which takes heads=2 or fewer."""
    path = pathlib.Path(path)
    vocab = build_vocab()
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_context_length(n_ctx_train)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_LAYER)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(N_EMBD // heads)
    writer.add_rope_freq_base(ROPE_FREQ_BASE)
    writer.add_layer_norm_rms_eps(RMS_EPS)
    writer.add_vocab_size(len(vocab.pieces))
    _add_tokenizer(writer, vocab, chat_template)
    for tensor_name, tensor in build_weights(vocab, seed, answers_briefly).items():
        writer.add_tensor(tensor_name, tensor)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def _add_tokenizer(writer: gguf.GGUFWriter, vocab: Vocab, chat_template: str | None) -> None:
    writer.add_tokenizer_model("llama")
    writer.add_token_list(list(vocab.pieces))
    writer.add_token_scores(list(vocab.scores))
    writer.add_token_types(list(vocab.types))
    writer.add_unk_token_id(vocab.id(UNK))
    writer.add_bos_token_id(vocab.id(BOS))
    writer.add_eos_token_id(vocab.id(EOS))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(True)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
