"""The reply parser: content, reasoning and tool-call events, streamed or whole."""

from __future__ import annotations

import itertools

import pytest
from fake_model import words

from modules.chat.messages import ChatMessage, ChatOptions
from modules.chat.replies import (
    ContentDelta,
    ReasoningDelta,
    ReplyParser,
    ToolCallDelta,
    collect,
)

TOOLS = {"parse_tools": True, "tool_names": ["add", "get_weather"]}
HERMES = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'


def parser(**kw) -> ReplyParser:
    ids = itertools.count(1)
    return ReplyParser(call_id=lambda: f"call_{next(ids)}", **kw)


def stream(text: str, step: int, **kw):
    p = parser(**kw)
    events = []
    for i in range(0, len(text), step):
        events += p.feed(text[i : i + step])
    events += p.finish()
    return events, collect(events, p.tool_calls)


CASES = [
    ("Hello world", {}, ("Hello world", "", 0)),
    ("<think>Let me see.</think>\n\nIt is 4.", {}, ("It is 4.", "Let me see.", 0)),
    (
        "Working...</think>Done.",
        {"starts_in_reasoning": True},
        ("Done.", "Working...", 0),
    ),
    ("<think>cut off", {}, ("", "cut off", 0)),
    (HERMES, TOOLS, ("", "", 1)),
    ("Let me add. " + HERMES + "\n" + HERMES, TOOLS, ("Let me add.", "", 2)),
    ("<think>need a tool</think>" + HERMES, TOOLS, ("", "need a tool", 1)),
    ('{"name": "add", "parameters": {"a": 1}}', TOOLS, ("", "", 1)),
    ('[add(a=1), get_weather(city="x")]', TOOLS, ("", "", 2)),
    ('[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}]', TOOLS, ("", "", 1)),
    ('Sure [TOOL_CALLS]add[ARGS]{"a": 1}', TOOLS, ("Sure", "", 1)),
    (
        '<tool_call>{"name": "add", "arguments": {oops}}</tool_call> ok',
        TOOLS,
        ('<tool_call>{"name": "add", "arguments": {oops}}</tool_call> ok', "", 0),
    ),
    ('<tool_call>{"name": "add"', TOOLS, ('<tool_call>{"name": "add"', "", 0)),
    # a length limit ended the reply inside the closing tag of a complete call: still a call
    (HERMES[:-3], TOOLS, ("", "", 1)),
    (HERMES.removesuffix("\n</tool_call>"), TOOLS, ("", "", 1)),
    ('<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_callx', TOOLS, (None, "", 0)),
    ('{"name": "someone", "age": 3}', TOOLS, ('{"name": "someone", "age": 3}', "", 0)),
    ("[1, 2, 3] are numbers", TOOLS, ("[1, 2, 3] are numbers", "", 0)),
    (HERMES, {}, (HERMES, "", 0)),  # tools off: plain text
    ("a <tool_ and <thin and [TOOL", TOOLS, ("a <tool_ and <thin and [TOOL", "", 0)),
]


@pytest.mark.parametrize(("text", "options", "expected"), CASES)
@pytest.mark.parametrize("step", [1, 2, 5, 10_000])
def test_streamed_and_whole_agree(text, options, expected, step):
    _, reply = stream(text, step, **options)
    content = text if expected[0] is None else expected[0]  # None: the text, unchanged
    assert (reply.content, reply.reasoning, len(reply.tool_calls)) == (content, *expected[1:])


def test_tool_call_deltas_have_id_and_name_first_then_arguments():
    events, reply = stream("x " + HERMES, 3, **TOOLS)
    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls == [
        ToolCallDelta(0, "call_1", "add", ""),
        ToolCallDelta(0, None, None, '{"a": 1}'),
    ]
    assert reply.tool_calls == (
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "add", "arguments": '{"a": 1}'},
        },
    )


def test_only_possible_markers_are_held_back():
    p = parser(**TOOLS)
    assert p.feed("Hello") == [ContentDelta("Hello")]
    assert p.feed(" there <too") == [ContentDelta(" there")]  # " <too" may start <tool_call>
    assert p.feed("ls are great") == [ContentDelta(" <tools are great")]
    assert p.feed(" <thi") == []
    assert p.feed("nk>hm") == [ReasoningDelta("hm")]
    assert p.feed("m</thi") == [ReasoningDelta("m")]
    assert p.feed("nk>ok") == [ContentDelta(" ok")]  # the held space before <think>
    assert p.finish() == []


def test_reply_that_may_be_a_json_call_is_held_to_the_end():
    p = parser(**TOOLS)
    assert p.feed('{"name": "add", ') == []
    assert p.feed('"parameters": {}}') == []
    assert [type(e) for e in p.finish()] == [ToolCallDelta, ToolCallDelta]


def test_placeholders_are_filled_even_when_split():
    events, reply = stream("Hi {{user}}, I'm <BOT>. {{CHAR}}!", 1, names=("Ann", "Bo"))
    assert reply.content == "Hi Ann, I'm Bo. Bo!"
    assert all("{" not in e.text for e in events)


def test_trim_for_chat_modes():
    assert stream("  Hello there.\n", 1, trim=True)[1].content == "Hello there."
    assert stream("  Hello there.\n", 1)[1].content == "  Hello there.\n"


def test_feed_after_finish_is_a_bug():
    p = parser()
    p.finish()
    with pytest.raises(RuntimeError):
        p.feed("x")


# --- through the service ----------------------------------------------------------------


def test_service_parser_follows_the_mode(service, model):
    msgs = [ChatMessage("user", "Hi")]
    chat = ChatOptions(mode="chat")
    prepared = service.prepare(msgs, chat, model, count_tokens=words, max_tokens=8)
    assert service.reply_parser(chat, prepared).whole(" Hi {{user}}! ").content == "Hi You!"
    instruct = ChatOptions(mode="instruct")
    prepared = service.prepare(msgs, instruct, model, count_tokens=words, max_tokens=8)
    # instruct replies are code-safe: placeholders stay as written
    assert service.reply_parser(instruct, prepared).whole("Use {{user}} here").content == "Use {{user}} here"


def test_service_parser_starts_in_reasoning_when_the_template_opened_it(service, make_model):
    model = make_model(chat_template="{{ messages[0]['content'] }}<think>\n")
    options = ChatOptions()
    prepared = service.prepare([ChatMessage("user", "Q")], options, model, count_tokens=words, max_tokens=8)
    assert prepared.starts_in_reasoning
    reply = service.reply_parser(options, prepared).whole("hmm</think>A")
    assert (reply.reasoning, reply.content) == ("hmm", "A")


def test_service_parser_parses_tools_only_when_enabled(service, model):
    tool = {"type": "function", "function": {"name": "add", "parameters": {}}}
    msgs = [ChatMessage("user", "Hi")]
    for choice, expected in (("auto", 1), ("none", 0)):
        options = ChatOptions(tools=(tool,), tool_choice=choice)
        prepared = service.prepare(msgs, options, model, count_tokens=words, max_tokens=8)
        reply = service.reply_parser(options, prepared).whole(HERMES)
        assert len(reply.tool_calls) == expected
