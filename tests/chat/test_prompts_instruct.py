"""The instruct mode: templates, continue, impersonate, stops, tools and tool history."""

from __future__ import annotations

import json

import pytest
from fake_model import words

from modules.chat.messages import ChatMessage, ChatOptions

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
}
TOOL_TURNS = [
    ChatMessage("user", "Weather in Paris?"),
    ChatMessage("assistant", "", tool_calls=(CALL,)),
    ChatMessage("tool", "18C, sunny", tool_call_id="call_1"),
]


def prepare(service, messages, model, **options):
    return service.prepare(messages, ChatOptions(**options), model, count_tokens=words, max_tokens=64)


def test_instruct_uses_the_template_and_system_message(service, make_model):
    model = make_model(bos_token="<|im_start|>", eos_token="<|im_end|>")
    prepared = prepare(
        service,
        [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")],
        model,
        instruction_template="ChatML",
    )
    assert prepared.prompt == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert prepared.stop == ("<|im_end|>\n<|im_start|>user", "<|im_start|>user")
    assert prepared.template_name == "ChatML" and prepared.grammar is None


def test_model_template_from_gguf_is_used(service, make_model):
    smol = (
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
        " + '<|im_end|>' + '\n'}}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    model = make_model(name="SmolLM2-135M-Instruct", chat_template=smol)
    prepared = prepare(service, [ChatMessage("user", "Hi")], model)
    assert prepared.template_name == "model"
    assert prepared.prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_alpaca_stop_is_the_next_instruction(service, model):
    prepared = prepare(service, [ChatMessage("user", "Hi")], model)
    assert prepared.template_name == "Alpaca"
    assert prepared.stop == ("### Instruction:",)


def test_continue_ends_inside_the_partial_reply(service, make_model):
    model = make_model(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    history = [ChatMessage("user", "Count"), ChatMessage("assistant", "1, 2,")]
    prepared = prepare(service, history, model, instruction_template="Llama-3", continue_=True)
    assert prepared.prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n1, 2,")


def test_impersonate_ends_at_the_users_turn(service, make_model):
    model = make_model(bos_token="<s>", eos_token="</s>")
    history = [ChatMessage("user", "Hi"), ChatMessage("assistant", "Hello.")]
    prepared = prepare(service, history, model, instruction_template="Zephyr", impersonate=True)
    assert prepared.prompt == "<|user|>\nHi</s>\n<|assistant|>\nHello.</s>\n<|user|>\n"
    assert prepared.stop[0] == "</s>\n<|assistant|>"
    partial = prepare(
        service,
        [*history, ChatMessage("user", "Tell me")],
        model,
        instruction_template="Zephyr",
        impersonate=True,
        continue_=True,
    )
    assert partial.prompt.endswith("<|user|>\nTell me")


def test_reasoning_of_earlier_replies_is_not_sent_back(service, model):
    history = [
        ChatMessage("user", "Q"),
        ChatMessage("assistant", "<think>long</think>Short."),
        ChatMessage("user", "Q2"),
    ]
    prompt = prepare(service, history, model, instruction_template="ChatML").prompt
    assert "long" not in prompt and "<|im_start|>assistant\nShort.<|im_end|>" in prompt


def test_templates_that_keep_reasoning_get_it_as_reasoning_content(service, model):
    # As transformers and llama.cpp pass it (Bielik, Seed-OSS, MiniMax-M3... render it back).
    keeper = (
        "{% for m in messages %}{{ m.role }}:{% if m.reasoning_content %}({{ m.reasoning_content }})"
        "{% endif %}{{ m.content }}|{% endfor %}"
    )
    history = [
        ChatMessage("user", "Q"),
        ChatMessage("assistant", "<think>\nlong\n</think>\n\nShort."),
        ChatMessage("user", "Q2"),
    ]
    prompt = prepare(service, history, model, instruction_template_str=keeper).prompt
    assert prompt == "user:Q|assistant:(long)Short.|user:Q2|"


GEMMA_2 = (  # google/gemma-2-2b-it's template, shortened
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' "
    "else message['role'] %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
    "'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def test_a_template_refusing_the_system_role_gets_it_in_the_first_user_message(service, model):
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    prepared = prepare(service, messages, model, instruction_template_str=GEMMA_2)
    # llama.cpp's way: the system text, a newline, the user's text
    assert prepared.prompt == "<s><start_of_turn>user\nBe brief.\nHi<end_of_turn>\n<start_of_turn>model\n"
    assert prepared.stop == ("<end_of_turn>\n<start_of_turn>user",)


def test_a_template_dropping_the_system_message_gets_it_in_the_first_user_message(service, model):
    template = "{% for m in messages if m.role != 'system' %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    prompt = prepare(service, messages, model, instruction_template_str=template).prompt
    assert prompt == "[user:Be brief.\nHi]"


def test_a_template_with_a_system_role_keeps_it(service, model):
    template = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}"
    messages = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi")]
    prompt = prepare(service, messages, model, instruction_template_str=template).prompt
    assert prompt == "[system:Be brief.][user:Hi]"


def test_tools_go_through_the_template_when_it_renders_them(service, model):
    prepared = prepare(
        service,
        [ChatMessage("user", "Weather?")],
        model,
        instruction_template="ChatML",
        tools=(WEATHER,),
    )
    assert "<tools>\n" + json.dumps(WEATHER) + "\n</tools>" in prepared.prompt
    assert prepared.prompt.count("# Tools") == 1
    assert prepared.tools_enabled and prepared.tool_names == ("get_weather",)


def test_tools_get_a_generic_preamble_otherwise(service, model):
    prepared = prepare(
        service,
        [ChatMessage("system", "Be brief."), ChatMessage("user", "Weather?")],
        model,
        instruction_template="Alpaca",
        tools=(WEATHER,),
    )
    assert prepared.prompt.startswith("Be brief.\n\n# Tools\n\nYou may call one or more functions")
    assert json.dumps(WEATHER) in prepared.prompt and "<tool_call>" in prepared.prompt


def test_tool_choice_none_hides_the_tools(service, model):
    prepared = prepare(service, [ChatMessage("user", "x")], model, tools=(WEATHER,), tool_choice="none")
    assert "get_weather" not in prepared.prompt and not prepared.tools_enabled
    assert prepared.grammar is None


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_forced_tool_choice_gives_a_grammar(service, model, choice):
    prepared = prepare(service, [ChatMessage("user", "x")], model, tools=(WEATHER,), tool_choice=choice)
    assert prepared.grammar and '\\"get_weather\\"' in prepared.grammar


def test_tool_history_renders_natively_in_a_tool_template(service, model):
    prompt = prepare(service, TOOL_TURNS, model, instruction_template="ChatML", tools=(WEATHER,)).prompt
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        "</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\n18C, sunny\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n"
    ) in prompt
    llama = prepare(service, TOOL_TURNS, model, instruction_template="Llama-3", tools=(WEATHER,)).prompt
    assert '{"name": "get_weather", "parameters": {"city": "Paris"}}<|eot_id|>' in llama
    assert "<|start_header_id|>ipython<|end_header_id|>\n\n18C, sunny<|eot_id|>" in llama


def test_tool_history_is_flattened_for_other_templates(service, model):
    prompt = prepare(service, TOOL_TURNS, model, instruction_template="Alpaca", tools=(WEATHER,)).prompt
    assert (
        "### Response:\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>\n\n'
        "### Instruction:\n<tool_response>\n18C, sunny\n</tool_response>\n\n### Response:\n"
    ) in prompt


def test_a_failing_template_is_a_clear_error(service, make_model):
    from modules.errors import InvalidRequest

    model = make_model(chat_template="{{ raise_exception('Conversation roles must alternate') }}")
    with pytest.raises(InvalidRequest, match="roles must alternate"):
        prepare(service, [ChatMessage("user", "x")], model)
