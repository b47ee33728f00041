"""A conversation too long for the context window keeps the context and the newest turns."""

from __future__ import annotations

import pytest
from fake_model import words

from modules.chat.messages import ChatMessage, ChatOptions
from modules.errors import ContextOverflow


def turns(n: int) -> list[ChatMessage]:
    out = []
    for i in range(n):
        out += [
            ChatMessage("user", f"question {i} " + "w " * 20),
            ChatMessage("assistant", f"answer {i} " + "w " * 20),
        ]
    return [*out, ChatMessage("user", "final question")]


def prepare(service, messages, model, max_tokens, **options):
    return service.prepare(
        messages,
        ChatOptions(**options),
        model,
        count_tokens=words,
        max_tokens=max_tokens,
    )


@pytest.mark.parametrize("mode", ["instruct", "chat", "chat-instruct"])
def test_old_turns_are_dropped_to_fit(service, make_model, mode):
    model = make_model(n_ctx=300)
    system = ChatMessage("system", "KEEP-THIS-CONTEXT")
    options = {"mode": mode, "instruction_template": "ChatML", "greeting": ""}
    prepared = prepare(service, [system, *turns(20)], model, 100, **options)
    assert words(prepared.prompt) <= 200
    assert prepared.truncated and prepared.dropped_messages > 0
    assert "KEEP-THIS-CONTEXT" in prepared.prompt
    assert "final question" in prepared.prompt and "answer 19" in prepared.prompt
    assert "question 0 " not in prepared.prompt
    # As many turns as fit: one more turn (a user message and its answer) would not have.
    kept = 41 - prepared.dropped_messages
    history = turns(20)[-(kept + 2) :]
    bigger = prepare(service, [system, *history], make_model(n_ctx=10_000), 100, **options)
    assert words(bigger.prompt) > 200


def test_no_truncation_when_it_fits(service, model):
    prepared = prepare(service, turns(2), model, 100)
    assert not prepared.truncated and prepared.dropped_messages == 0


def test_cut_only_before_a_user_message(service, make_model):
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
    }
    history = [
        ChatMessage("user", "a " * 50),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "r " * 50, tool_call_id="c1"),
        ChatMessage("assistant", "done"),
        ChatMessage("user", "next"),
    ]
    prepared = prepare(service, history, make_model(n_ctx=120), 60, instruction_template="ChatML")
    assert prepared.dropped_messages == 4
    assert "<tool_response>" not in prepared.prompt


def test_overflow_when_the_last_message_alone_is_too_long(service, make_model):
    with pytest.raises(ContextOverflow) as info:
        prepare(service, [ChatMessage("user", "w " * 500)], make_model(n_ctx=300), 100)
    assert info.value.status == 400 and info.value.code == "context_length_exceeded"


def test_max_tokens_larger_than_the_context(service, make_model):
    with pytest.raises(ContextOverflow):
        prepare(service, [ChatMessage("user", "x")], make_model(n_ctx=300), 300)
