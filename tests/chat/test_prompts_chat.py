"""The chat and chat-instruct modes with a character that has example dialogue."""

from __future__ import annotations

import pytest
from fake_model import words

from modules.chat.hooks import ChatHooks
from modules.chat.messages import ChatMessage, ChatOptions
from modules.chat.service import ChatService

U, A, S = (
    (lambda t: ChatMessage("user", t)),
    (lambda t: ChatMessage("assistant", t)),
    (lambda t: ChatMessage("system", t)),
)


@pytest.fixture
def nova(characters):
    return characters.save(
        "Nova",
        name="Nova",
        context="Nova is a starship AI who serves {{user}}. <BOT> is dry and precise.",
        greeting="Systems online, {{user}}.",
        example_dialogue=(
            "<START>\n{{user}}: Status?\n{{char}}: Nominal.\n<START>\n<USER>: Fuel?\n<BOT>: 80%."
        ),
        user_name="Captain",
    )


def prepare(service, messages, model, **options):
    return service.prepare(messages, ChatOptions(**options), model, count_tokens=words, max_tokens=64)


CHAT_BODY = (
    "Nova is a starship AI who serves Captain. Nova is dry and precise.\n\n"
    "Captain: Status?\nNova: Nominal.\n\nCaptain: Fuel?\nNova: 80%.\n\n"
    "Nova: Systems online, Captain.\n"
    "Captain: Where are we?\n"
)


def test_chat_prompt(service, model, nova):
    prepared = prepare(service, [U("Where are we?")], model, mode="chat", character="Nova")
    assert prepared.prompt == CHAT_BODY + "Nova:"
    assert prepared.stop == ("\nCaptain:", "\nNova:")
    assert (prepared.user_name, prepared.bot_name, prepared.template_name) == (
        "Captain",
        "Nova",
        "",
    )
    assert not prepared.truncated


def test_chat_instruct_prompt_wraps_the_chat_prompt(service, model, nova):
    prepared = prepare(
        service,
        [U("Where are we?")],
        model,
        mode="chat-instruct",
        character="Nova",
        instruction_template="ChatML",
    )
    command = (
        'Continue the chat dialogue below. Write a single reply for the character "Nova".\n\n'
        + CHAT_BODY.rstrip()
    )
    assert prepared.prompt == (f"<|im_start|>user\n{command}<|im_end|>\n<|im_start|>assistant\nNova:")
    assert prepared.template_name == "ChatML"
    assert prepared.stop[:2] == ("\nCaptain:", "\nNova:")
    assert "<|im_end|>\n<|im_start|>user" in prepared.stop


def test_custom_chat_instruct_command_and_names(service, model, nova):
    prepared = prepare(
        service,
        [U("Hi")],
        model,
        mode="chat-instruct",
        character="Nova",
        instruction_template="Alpaca",
        chat_instruct_command="Play <|character|> for {{user}}:\n<|prompt|>",
        user_name="Ann",
        bot_name="Vega",
    )
    assert (
        "### Instruction:\nPlay Vega for Ann:\nNova is a starship AI who serves Ann. Vega is dry"
        in prepared.prompt
    )
    assert prepared.prompt.endswith("Ann: Hi\n\n### Response:\nVega:")


def test_placeholders_are_filled_everywhere(service, model, nova):
    prompt = prepare(service, [U("Hi")], model, mode="chat", character="Nova", user_name="Ann").prompt
    for placeholder in ("{{user}}", "{{char}}", "<USER>", "<BOT>", "<START>"):
        assert placeholder not in prompt
    assert "Ann: Fuel?\nNova: 80%." in prompt and "Systems online, Ann." in prompt


def test_overrides_of_context_greeting_and_bio(service, model, nova):
    prompt = prepare(
        service,
        [U("Hi")],
        model,
        mode="chat",
        character="Nova",
        context="Custom {{char}}.",
        greeting="Yo.",
        user_bio="Ann is a pilot.",
    ).prompt
    assert prompt.startswith("Custom Nova.\n\nAnn is a pilot.\n\nCaptain: Status?")
    assert "Nova: Yo.\nCaptain: Hi\nNova:" in prompt


def test_leading_system_messages_become_the_context(service, model, nova):
    prompt = prepare(
        service,
        [S("Be a pirate."), S("Speak in rhymes."), U("Hi")],
        model,
        mode="chat",
        character="Nova",
    ).prompt
    assert prompt.startswith("Be a pirate.\n\nSpeak in rhymes.\n\nCaptain: Status?")
    assert "starship" not in prompt


def test_greeting_is_not_repeated_when_the_history_has_it(service, model, nova):
    prompt = prepare(
        service,
        [A("Systems online, Captain."), U("Hi")],
        model,
        mode="chat",
        character="Nova",
    ).prompt
    assert prompt.count("Systems online") == 1


def test_continue_and_impersonate(service, model, nova):
    history = [U("Report."), A("All systems")]
    cont = prepare(service, history, model, mode="chat", character="Nova", continue_=True)
    assert cont.prompt.endswith("Captain: Report.\nNova: All systems")
    imp = prepare(service, history, model, mode="chat", character="Nova", impersonate=True)
    assert imp.prompt.endswith("Captain: Report.\nNova: All systems\nCaptain:")
    assert imp.stop[0] == "\nNova:"


def test_default_character_is_the_plain_assistant(service, model):
    prepared = prepare(service, [U("Hi")], model, mode="chat")
    assert prepared.bot_name == "Assistant" and prepared.user_name == "You"
    assert prepared.prompt.startswith("The following is a conversation with an AI assistant.")
    assert "You's questions" in prepared.prompt  # {{user}} filled


def test_unknown_character_is_not_found(service, model):
    from modules.errors import NotFound

    with pytest.raises(NotFound):
        prepare(service, [U("Hi")], model, mode="chat", character="Nobody")


def test_hooks_are_called(characters, templates, history, model, nova):
    class Loud(ChatHooks):
        def input_modifier(self, text, state):
            return text.upper()

        def bot_prefix_modifier(self, prefix, state):
            return prefix + " *beep*"

        def history_modifier(self, messages, state):
            return [m for m in messages if m.content != "drop me"]

        def output_modifier(self, text, state):
            return text.replace("a", "4")

    service = ChatService(characters=characters, templates=templates, history=history, hooks=Loud())
    options = ChatOptions(mode="chat", character="Nova")
    prepared = service.prepare([U("drop me"), U("hello")], options, model, count_tokens=words, max_tokens=8)
    assert prepared.prompt.endswith("Captain: HELLO\nNova: *beep*")
    assert "drop me" not in prepared.prompt
    parser = service.reply_parser(options, prepared)
    assert parser.whole(" a banana").content == "4 b4n4n4"


def test_custom_prompt_hook_replaces_the_prompt(characters, templates, history, model):
    class Custom(ChatHooks):
        def custom_generate_chat_prompt(self, messages, state):
            return f"CUSTOM {state['mode']} {len(messages)}"

    service = ChatService(characters=characters, templates=templates, history=history, hooks=Custom())
    prepared = service.prepare([U("x")], ChatOptions(mode="chat"), model, count_tokens=words, max_tokens=8)
    assert prepared.prompt == "CUSTOM chat 2"  # greeting + message


def test_invalid_mode(service, model):
    from modules.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        prepare(service, [U("x")], model, mode="story")
    assert info.value.param == "mode"


def test_tools_in_chat_mode_go_into_the_context(service, model, nova):
    tool = {"type": "function", "function": {"name": "scan", "parameters": {}}}
    options = ChatOptions(mode="chat", character="Nova", tools=(tool,))
    prepared = service.prepare([U("Scan!")], options, model, count_tokens=words, max_tokens=8)
    context = prepared.prompt.split("\n\nCaptain: Status?")[0]
    assert context.startswith("Nova is a starship AI") and '"name": "scan"' in context
    reply = service.reply_parser(options, prepared).whole(
        ' <tool_call>{"name": "scan", "arguments": {}}</tool_call>'
    )
    assert reply.tool_calls and reply.content == ""


def test_record_saves_an_api_conversation_as_the_ui_shows_it(service, nova, model):
    class Visible(ChatHooks):
        def chat_input_modifier(self, text, visible_text, state):
            return f"[context] {text}", visible_text

    service.hooks = Visible()
    options = ChatOptions(mode="chat", character="Nova", user_name="Kim")
    prepared = service.prepare([U("Status?")], options, model, count_tokens=words, max_tokens=8)
    assert "[context] Status?" in prepared.prompt
    chat = service.record("api-1", [U("Status?")], options, prepared, A("Nominal."))
    assert chat.character == "Nova" and chat.mode == "chat"
    assert [(m.role, m.content) for m in chat.messages] == [
        ("assistant", "Systems online, Kim."),  # the greeting, as the prompt had it
        ("user", "Status?"),  # what the user wrote, not what the hook put in the prompt
        ("assistant", "Nominal."),
    ]
    assert service.history.load("chat", "Nova", "api-1") == chat

    cont = ChatOptions(mode="instruct", continue_=True)
    partial = [U("Tell a story"), A("Once upon")]
    prepared = service.prepare(partial, cont, model, count_tokens=words, max_tokens=8)
    chat = service.record("api-2", partial, cont, prepared, A(" a time"))
    assert [(m.role, m.content) for m in chat.messages] == [
        ("user", "Tell a story"),
        ("assistant", "Once upon a time"),
    ]
    assert chat.character is None and service.history.exists("instruct", None, "api-2")
