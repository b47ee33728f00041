"""The tiny random-weight GGUF model, checked against the real llama.cpp engine."""

from __future__ import annotations

import hashlib
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tiny_model import CHATML_TEMPLATE, EOS, build_vocab, write_tiny_model

llama_cpp = pytest.importorskip("llama_cpp")

PROMPT = "The quick brown fox"
CHAT_PROMPT = "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n"
PRINTABLE = set(string.ascii_letters + string.digits + string.punctuation + " \n")


def load(path: Path, **kwargs) -> llama_cpp.Llama:
    return llama_cpp.Llama(model_path=str(path), n_ctx=512, n_threads=1, verbose=False, **kwargs)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="module")
def llm(model_path: Path) -> Iterator[llama_cpp.Llama]:
    model = load(model_path)
    yield model
    model.close()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def generate_ids(llm: llama_cpp.Llama, prompt: str, n: int) -> list[int]:
    """Greedy token ids after `prompt` (special tokens in the prompt are parsed)."""
    ids = []
    for token in llm.generate(llm.tokenize(prompt.encode(), special=True), temp=0.0, reset=True):
        ids.append(token)
        if len(ids) == n:
            return ids
    return ids


def test_same_arguments_give_the_same_small_file(tmp_path: Path) -> None:
    first = write_tiny_model(tmp_path / "a.gguf")
    second = write_tiny_model(tmp_path / "b.gguf")
    other_seed = write_tiny_model(tmp_path / "c.gguf", seed=1)

    assert sha256(first) == sha256(second)
    assert sha256(other_seed) != sha256(first)
    assert first.stat().st_size < 400_000


def test_loads_fast(model_path: Path) -> None:
    start = time.perf_counter()
    model = load(model_path)
    elapsed = time.perf_counter() - start
    model.close()
    assert elapsed < 0.5


def test_metadata(tmp_path: Path) -> None:
    path = write_tiny_model(tmp_path / "m.gguf", name="unit", n_ctx_train=1024)
    model = load(path)
    vocab = build_vocab()

    assert model.metadata["general.name"] == "unit"
    assert model.metadata["tokenizer.chat_template"] == CHATML_TEMPLATE
    assert model.metadata["llama.context_length"] == "1024"
    assert model.n_vocab() == len(vocab.pieces)
    assert model.token_eos() == vocab.id(EOS)
    assert model.token_bos() == vocab.id("<s>")
    assert model.tokenize(b"hi")[0] == model.token_bos()  # add_bos_token
    model.close()


def test_chat_template_is_optional(tmp_path: Path) -> None:
    model = load(write_tiny_model(tmp_path / "m.gguf", chat_template=None))
    assert "tokenizer.chat_template" not in model.metadata
    model.close()


@pytest.mark.parametrize("text", ["Hello world, this is a test.", "héllo 世界 🙂"])
def test_tokenize_round_trip(llm: llama_cpp.Llama, text: str) -> None:
    tokens = llm.tokenize(text.encode())
    assert llm.detokenize(tokens).decode() == text


def test_english_uses_word_pieces_and_other_text_uses_bytes(
    llm: llama_cpp.Llama,
) -> None:
    def pieces(text: str) -> list[bytes]:
        return [llm.detokenize([t]) for t in llm.tokenize(text.encode(), add_bos=False)]

    assert {b" world", b" this", b" is", b" test"} <= set(pieces("Hello world, this is a test."))
    # 世 is not in the vocabulary: its first UTF-8 byte becomes a byte-fallback token.
    assert b"\xe4" in pieces("世界")


def test_chatml_tokens_are_single_tokens(llm: llama_cpp.Llama) -> None:
    for piece in ("<|im_start|>", "<|im_end|>"):
        assert len(llm.tokenize(piece.encode(), add_bos=False, special=True)) == 1
        assert len(llm.tokenize(piece.encode(), add_bos=False, special=False)) > 1


def test_chat_template_renders_chatml(llm: llama_cpp.Llama) -> None:
    formatter = llama_cpp.llama_chat_format.Jinja2ChatFormatter(
        template=llm.metadata["tokenizer.chat_template"], eos_token=EOS, bos_token="<s>"
    )
    prompt = formatter(messages=[{"role": "user", "content": "Hi there"}]).prompt
    assert prompt == CHAT_PROMPT

    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": "Hi there"}],
        max_tokens=10,
        temperature=0.0,
    )
    # The library renders the GGUF's template and adds no BOS of its own to it.
    chatml_ids = llm.tokenize(CHAT_PROMPT.encode(), add_bos=False, special=True)
    assert reply["usage"]["prompt_tokens"] == len(chatml_ids)
    assert reply["choices"][0]["message"]["content"]


def test_greedy_completion_is_printable_varied_text(llm: llama_cpp.Llama) -> None:
    result = llm.create_completion(PROMPT, max_tokens=40, temperature=0.0)
    text = result["choices"][0]["text"]

    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 40
    assert set(text) <= PRINTABLE
    assert len(set(text.split())) >= 10


@pytest.mark.parametrize("prompt", [PROMPT, CHAT_PROMPT, "héllo 世界 🙂"])
def test_greedy_never_emits_control_or_non_ascii_byte_tokens(llm: llama_cpp.Llama, prompt: str) -> None:
    ids = generate_ids(llm, prompt, 200)
    assert len(ids) == 200
    assert not set(ids) & build_vocab().banned
    assert len(set(ids)) >= 50  # no short loop
    assert set(llm.detokenize(ids).decode()) <= PRINTABLE


def test_logits_keep_banned_tokens_far_down_and_eos_possible(model_path: Path) -> None:
    model = load(model_path, logits_all=True)
    vocab = build_vocab()
    banned = sorted(vocab.banned)
    allowed = [i for i in range(len(vocab.pieces)) if i not in vocab.banned]
    for prompt in (PROMPT, CHAT_PROMPT, "héllo 世界 🙂"):
        model.reset()
        model.eval(model.tokenize(prompt.encode(), special=True))
        logits = model.scores[model.n_tokens - 1]
        best = logits[allowed].max()
        assert logits[banned].max() < best - 30
        assert best - 15 < logits[vocab.id(EOS)] < best
    model.close()


def test_eos_ends_generation_when_favoured(llm: llama_cpp.Llama) -> None:
    plain = llm.create_completion(PROMPT, max_tokens=20, temperature=1.0, seed=3)
    forced = llm.create_completion(
        PROMPT,
        max_tokens=20,
        temperature=1.0,
        seed=3,
        logit_bias={llm.token_eos(): 30.0},
    )
    assert plain["choices"][0]["finish_reason"] == "length"
    assert forced["choices"][0]["finish_reason"] == "stop"
    assert forced["usage"]["completion_tokens"] < 20


def test_sampling_depends_on_the_seed_only(llm: llama_cpp.Llama) -> None:
    def sample(seed: int) -> str:
        result = llm.create_completion(PROMPT, max_tokens=30, temperature=1.0, seed=seed)
        return result["choices"][0]["text"]

    assert sample(1) == sample(1)
    assert len({sample(seed) for seed in range(1, 5)}) == 4


def test_streaming_is_not_held_back(llm: llama_cpp.Llama) -> None:
    chunks = [
        chunk["choices"][0]["text"]
        for chunk in llm.create_completion(PROMPT, max_tokens=30, temperature=0.0, stream=True)
    ]
    assert sum(1 for text in chunks if text) >= 25


def test_generation_is_fast(llm: llama_cpp.Llama) -> None:
    start = time.perf_counter()
    result = llm.create_completion(PROMPT, max_tokens=300, temperature=0.0)
    elapsed = time.perf_counter() - start
    # Thousands of tokens/s on an idle core; the bound leaves room for a busy machine.
    assert result["usage"]["completion_tokens"] / elapsed > 500


def test_vocab_ids_and_types() -> None:
    vocab = build_vocab()
    assert len(set(vocab.pieces)) == len(vocab.pieces)
    assert vocab.pieces[:3] == ("<unk>", "<s>", "</s>")
    assert vocab.id("<0x00>") + 255 == vocab.id("<0xFF>")
    assert vocab.id(EOS) not in vocab.banned
    assert vocab.id("<0x0A>") not in vocab.banned
    assert vocab.id("<0x80>") in vocab.banned
