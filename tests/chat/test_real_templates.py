"""Every real chat template in llama.cpp's collection renders as the reference renders it.

The templates (~70 `.jinja` files: Qwen, Llama 3.x, Gemma, GLM, MiniMax, DeepSeek, Mistral,
gpt-oss, Nemotron, ...) are vendored in the llama-cpp-python sdist that requirements/base.txt
pins; tests/setup.sh extracts them into tests/.artifacts/llama-cpp-templates/<version>/.

Each conversation goes through Hearth's real path, `POST /v1/internal/chat-prompt` with the
template as `instruction_template_str`, and is compared byte for byte with transformers' own
renderer (`render_jinja_template`: its Jinja sandbox with `raise_exception`, `strftime_now`,
`tojson(ensure_ascii=..., indent=..., ...)` and `{% generation %}`), given the conversation
as transformers users write it: tool-call arguments as objects, an earlier reply's reasoning
as `reasoning_content`.

Where Hearth changes what a template sees by design, the reference is given the same change,
so the comparison stays exact:

- a template that does not read `tools` gets Hearth's tool preamble in the system message
  (NO_TOOLS), and one that renders no tool calls gets calls and results as text
  (NO_TOOL_MESSAGES; see modules/chat/tools.py);
- a template without a system role (Gemma 2) gets the system text joined to the first user
  message with a newline, as llama.cpp does (NO_SYSTEM_ROLE).

Where the reference fails, Hearth must fail with the same message (REFERENCE_FAILURES).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import make_user_data, tiny_args
from tiny_model import BOS, EOS, write_tiny_model

from modules.app import close_app, create_app
from modules.chat import tools as toolbox
from modules.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
LLAMA_CPP_VERSION = re.search(
    r"^llama-cpp-python==(\S+)", (REPO / "requirements" / "base.txt").read_text(), re.MULTILINE
).group(1)
TEMPLATES = REPO / "tests" / ".artifacts" / "llama-cpp-templates" / LLAMA_CPP_VERSION
SOURCES = sorted(TEMPLATES.glob("*.jinja"))
MIN_TEMPLATES = 70  # what llama-cpp-python 0.3.36 vendors
CTX = 16384  # the longest prompt here is ~7,000 characters

# --- the conversations, as transformers users write them -------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city, e.g. Zürich",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city"}},
            "required": ["city"],
        },
    },
}
SYSTEM = {"role": "system", "content": "You are terse."}
CHAT = [
    SYSTEM,
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello."},
    {"role": "user", "content": "Weather in Zürich?"},
]
CALL_ID = "call00001"  # Mistral's templates want ids of 9 letters and digits
TOOL_TURNS = [
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": CALL_ID,
                "type": "function",
                "function": {"name": "get_weather", "arguments": {"city": "Zürich"}},
            }
        ],
    },
    {"role": "tool", "tool_call_id": CALL_ID, "content": "18°C, sunny"},
]
TOOL_TURNS_AS_TEXT = [  # for a template without tool calls (modules/chat/tools.py)
    {
        "role": "assistant",
        "content": '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Zürich"}}\n</tool_call>',
    },
    {"role": "user", "content": "<tool_response>\n18°C, sunny\n</tool_response>"},
]
REASONING = [
    SYSTEM,
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello.", "reasoning_content": "The user greets me."},
    {"role": "user", "content": "2+2?"},
]
CASES: dict[str, tuple[list[dict], list[dict] | None]] = {
    "chat": (CHAT, None),
    "no-system": (CHAT[1:], None),
    "tools": (CHAT, [WEATHER]),
    "tool-calls": (CHAT + TOOL_TURNS, [WEATHER]),
    "reasoning": (REASONING, None),
}

# --- what Hearth does by design, per template ---------------------------------------------------

NO_TOOLS = {  # they never read `tools`: Hearth's preamble describes the tools instead
    "HuggingFaceTB-SmolLM3-3B",  # reads `xml_tools`, which transformers users build themselves
    "deepseek-ai-DeepSeek-R1-Distill-Llama-8B",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
    "deepseek-ai-DeepSeek-V3.1",
    "fireworks-ai-llama-3-firefunction-v2",  # reads `functions`
    "google-gemma-2-2b-it",
    "llama-cpp-rwkv-world",
    "microsoft-Phi-3.5-mini-instruct",
}
NO_TOOL_MESSAGES = {  # they render no `tool_calls`: calls and results become text
    "HuggingFaceTB-SmolLM3-3B",
    "LFM2-8B-A1B",
    "LFM2.5-Instruct",
    "google-gemma-2-2b-it",
    "ibm-granite-granite-3.3-2B-Instruct",
    "llama-cpp-rwkv-world",
    "microsoft-Phi-3.5-mini-instruct",
}
NO_SYSTEM_ROLE = {"google-gemma-2-2b-it"}  # raises "System role not supported"
# tool_use variants loop over `tools` unguarded: transformers' `tools=None` fails; Hearth
# leaves `tools` undefined without tools, which renders as an empty list does.
NEEDS_TOOL_LIST = {
    "CohereForAI-c4ai-command-r-plus-tool_use",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use",
    "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
}
# (template, case) -> what both renderers say. Each is a template written for llama.cpp's own
# Jinja engine, or for inputs other than transformers' and the OpenAI API's.
REFERENCE_FAILURES = {
    **{
        ("fireworks-ai-llama-3-firefunction-v2", case): "'functions' is undefined"  # llama.cpp fills it
        for case in CASES
    },
    # `namespace.list.append(...)`: mutation, which every immutable sandbox refuses
    ("Kimi-K2-Instruct", "tool-calls"): "access to attribute 'append' of 'list' object is unsafe",
    ("Kimi-K2-Thinking", "tool-calls"): "access to attribute 'append' of 'list' object is unsafe",
    # `tools | map(...) | tojson`: a generator, which Python's json cannot write
    ("llama-cpp-deepseek-r1", "tools"): "Object of type generator is not JSON serializable",
    ("llama-cpp-deepseek-r1", "tool-calls"): "Object of type generator is not JSON serializable",
    # wants the arguments as a JSON string, where transformers' convention is an object
    ("meetkai-functionary-medium-v3.2", "tool-calls"): 'can only concatenate str (not "dict") to str',
}


def wire_messages(messages: list[dict]) -> list[dict]:
    """The conversation as an OpenAI client sends it: arguments as JSON text, and reasoning
    inside the reply as Hearth's UI keeps it."""
    out = []
    for message in messages:
        message = dict(message)
        if reasoning := message.pop("reasoning_content", None):
            message["content"] = f"<think>\n{reasoning}\n</think>\n\n{message['content']}"
        if message.get("tool_calls"):
            message["tool_calls"] = [
                {
                    **call,
                    "function": {**call["function"], "arguments": json.dumps(call["function"]["arguments"])},
                }
                for call in message["tool_calls"]
            ]
        out.append(message)
    return out


def reference_input(
    name: str, messages: list[dict], tools: list[dict] | None
) -> tuple[list[dict], list | None]:
    """What the reference renders: the conversation with Hearth's by-design changes."""
    messages = [dict(m) for m in messages]
    if tools and name in NO_TOOLS:
        messages[0] = {**messages[0], "content": messages[0]["content"] + "\n\n" + toolbox.preamble(tools)}
        tools = None
    if name in NO_TOOL_MESSAGES and messages[-len(TOOL_TURNS) :] == TOOL_TURNS:
        messages[-len(TOOL_TURNS) :] = TOOL_TURNS_AS_TEXT
    if name in NO_SYSTEM_ROLE and messages[0]["role"] == "system":
        system, first, *rest = messages
        messages = [{**first, "content": system["content"] + "\n" + first["content"]}, *rest]
    if tools is None and name in NEEDS_TOOL_LIST:
        tools = []
    return messages, tools


def reference(source: str, messages: list[dict], tools: list[dict] | None) -> str:
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        [messages],
        tools=tools,
        chat_template=source,
        add_generation_prompt=True,
        bos_token=BOS,
        eos_token=EOS,
    )
    return rendered[0]


# --- Hearth -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator:
    """An API app on the tiny model, with room for every prompt here."""
    root = tmp_path_factory.mktemp("real-templates")
    (root / "models").mkdir()
    write_tiny_model(root / "models" / "tiny.gguf", n_ctx_train=CTX)
    user_data = make_user_data(root / "user_data")
    app = create_app(load_settings([*tiny_args(user_data, root / "models", ctx_size=CTX), "--api"], {}))
    app.config["TESTING"] = True
    yield app.test_client()
    close_app(app)


def hearth(client, source: str, messages: list[dict], tools: list[dict] | None) -> tuple[int, dict]:
    body = {"messages": wire_messages(messages), "instruction_template_str": source, "max_tokens": 16}
    if tools:
        body["tools"] = tools
    response = client.post("/v1/internal/chat-prompt", json=body)
    return response.status_code, response.get_json()


def test_the_templates_are_there():
    assert len(SOURCES) >= MIN_TEMPLATES, (
        f"{TEMPLATES} holds {len(SOURCES)} chat templates, not {MIN_TEMPLATES} or more: "
        "run tests/setup.sh (it extracts them from the llama-cpp-python sdist)"
    )
    names = {path.stem for path in SOURCES}
    listed = (
        NO_TOOLS | NO_TOOL_MESSAGES | NO_SYSTEM_ROLE | NEEDS_TOOL_LIST | {n for n, _ in REFERENCE_FAILURES}
    )
    assert listed <= names, f"the tables name templates that are gone: {sorted(listed - names)}"


@pytest.mark.parametrize("path", SOURCES or [TEMPLATES / "missing"], ids=lambda path: path.stem)
def test_template_renders_as_the_reference_does(client, path):
    if not path.is_file():
        pytest.fail(f"No chat templates in {TEMPLATES}: run tests/setup.sh to fetch them")
    source = path.read_text(encoding="utf-8")
    problems = []
    for case, (messages, tools) in CASES.items():
        status, body = hearth(client, source, messages, tools)
        failure = REFERENCE_FAILURES.get((path.stem, case))
        try:
            expected = reference(source, *reference_input(path.stem, messages, tools))
        except Exception as e:  # any failure of the reference: Hearth must fail alike
            if failure is None or failure not in str(e):
                problems.append(f"{case}: the reference failed unexpectedly: {type(e).__name__}: {e}")
            elif status != 400 or failure not in body["error"]["message"]:
                problems.append(
                    f"{case}: the reference fails with {failure!r}, Hearth answered {status} {body}"
                )
            continue
        if failure is not None:
            problems.append(f"{case}: the reference renders now: drop it from REFERENCE_FAILURES")
        if status != 200:
            problems.append(f"{case}: Hearth answered {status}: {body['error']['message']}")
        elif body["dropped_messages"] or body["prompt"] != expected:
            diff = difflib.unified_diff(
                expected.splitlines(keepends=True),
                body["prompt"].splitlines(keepends=True),
                "reference",
                "Hearth",
            )
            problems.append(f"{case}: the prompts differ\n{''.join(diff)}")
    assert not problems, "\n".join(problems)
