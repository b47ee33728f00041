"""The examples users paste from the docs of the programs they come from, run as written
(only the host and port changed): GPT4All's cURL calls and its openai~=0.28 example (in a
virtualenv of its own), text-generation-webui's sseclient-py streaming examples (with the
`[DONE]` line docs/api.md gives), LocalAI's cURL calls, and the Node openai client."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest
import requests

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = PROJECT_ROOT / "tests" / ".artifacts"
NODE_DIR = PROJECT_ROOT / "tests" / "node"


@pytest.fixture(scope="module")
def gpt4all(start_api, named_model_dir):
    """GPT4All users' setup: a model called "Phi-3 Mini Instruct"; room for max_tokens 2048."""
    return start_api("--ctx-size", "2560", models=named_model_dir, model="Phi-3 Mini Instruct")


@pytest.fixture(scope="module")
def textgen(start_api):
    """text-generation-webui's examples name no model and mostly no max_tokens."""
    return start_api("--ctx-size", "768")


def run(args: list[str], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (
        f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def curl(command: str, server, old_base: str) -> dict:
    output = run(["bash", "-c", command.replace(old_base, server.api_base.replace("127.0.0.1", "localhost"))])
    return json.loads(output.stdout)


# --- GPT4All ---------------------------------------------------------------------------------------

GPT4ALL_DOCS_CURL = """\
curl -X POST http://localhost:4891/v1/chat/completions -d '{
"model": "Phi-3 Mini Instruct",
"messages": [{"role":"user","content":"Who is Michael Jordan?"}],
"max_tokens": 50,
"temperature": 0.28,
"top_p": 0.95,
}'
"""

GPT4ALL_PAGE_CURL = """\
curl -X POST http://localhost:4891/v1/chat/completions -d '{
"model": "Phi-3 Mini Instruct",
"messages": [{"role":"user","content":"hi, who are you?"}],
"max_tokens": 2048,
"temperature": 0.7
}'
"""

GPT4ALL_OPENAI_028 = """\
import openai
#openai.api_base = "https://api.openai.com/v1"
openai.api_base = "http://localhost:4891/v1"
openai.api_key = "not needed for a local LLM"
# Set up the prompt and other parameters for the API request
prompt = "Who is Michael Jordan?"
#model = "gpt-3.5-turbo"
model = "Phi-3 Mini Instruct"
# Make the API request
response = openai.Completion.create(
model=model,
prompt=prompt,
max_tokens=50,
temperature=0.28,
top_p=0.95,
n=1,
echo=True,
stream=False
)
# Print the generated completion
print(response)
"""


@pytest.mark.parametrize(
    ("command", "max_tokens"),
    [(GPT4ALL_DOCS_CURL, 50), (GPT4ALL_PAGE_CURL, 2048)],
    ids=["docs, with a trailing comma", "local API server page"],
)
def test_gpt4all_curl_chat(gpt4all, command, max_tokens):
    reply = curl(command, gpt4all, "http://localhost:4891")
    assert reply["object"] == "chat.completion" and reply["model"] == "Phi-3 Mini Instruct"
    assert reply["choices"][0]["message"]["content"]
    assert reply["usage"]["completion_tokens"] <= max_tokens


def test_gpt4all_model_url_with_spaces(gpt4all):
    output = run(
        ["curl", "-s", gpt4all.api_url.replace("127.0.0.1", "localhost") + "/models/Phi-3%20Mini%20Instruct"]
    )
    assert json.loads(output.stdout)["id"] == "Phi-3 Mini Instruct"


def old_openai_python() -> Path:
    """A virtualenv of its own with openai~=0.28 (kept in tests/.artifacts between runs)."""
    folder = ARTIFACTS / "venv-openai-0.28"
    python = folder / "bin" / "python"
    check = [str(python), "-c", "import openai; assert openai.version.VERSION.startswith('0.28')"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    shutil.rmtree(folder, ignore_errors=True)
    venv.create(folder, with_pip=True)
    run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "openai~=0.28"],
        timeout=600,
    )
    return python


def test_gpt4all_openai_028_completion_with_echo(gpt4all, tmp_path):
    python = old_openai_python()
    script = tmp_path / "example.py"
    script.write_text(GPT4ALL_OPENAI_028.replace("http://localhost:4891", gpt4all.api_base))
    output = run([str(python), str(script)], env={**os.environ, "PYTHONPATH": ""})
    response = json.loads(output.stdout)
    choice = response["choices"][0]
    assert response["object"] == "text_completion" and response["model"] == "Phi-3 Mini Instruct"
    assert choice["text"].startswith("Who is Michael Jordan?")  # echo=True
    assert len(choice["text"]) > len("Who is Michael Jordan?")
    assert response["usage"]["completion_tokens"] == 50


# --- text-generation-webui's sseclient-py examples ------------------------------------------------

# Runs an example whose `while True: input("> ")` loop wants a user: the first input() gets
# the line given, the next ends the program the way Ctrl-D would end a session.
RUNNER = """\
import builtins, sys
lines = iter(sys.argv[2:])
def one_line(prompt=""):
    try:
        return next(lines)
    except StopIteration:
        raise SystemExit(0)
builtins.input = one_line
path = sys.argv[1]
exec(compile(open(path).read(), path, "exec"), {"__name__": "__main__"})
"""

TEXTGEN_OLDER_CHAT_STREAM = """\
import requests
import sseclient  # pip install sseclient-py
import json

url = "http://127.0.0.1:5000/v1/chat/completions"

headers = {
    "Content-Type": "application/json"
}

history = []

while True:
    user_message = input("> ")
    history.append({"role": "user", "content": user_message})
    data = {
        "mode": "instruct",
        "stream": True,
        "messages": history
    }

    stream_response = requests.post(url, headers=headers, json=data, verify=False, stream=True)
    client = sseclient.SSEClient(stream_response)

    assistant_message = ''
    for event in client.events():
        payload = json.loads(event.data)
        chunk = payload['choices'][0]['message']['content']
        assistant_message += chunk
        print(chunk, end='')

    print()
    history.append({"role": "assistant", "content": assistant_message})
"""

TEXTGEN_CURRENT_CHAT_STREAM = """\
import requests
import sseclient # pip install sseclient-py
import json
url = "http://127.0.0.1:5000/v1/chat/completions"
headers = {
"Content-Type": "application/json"
}
history = []
while True:
    user_message = input("> ")
    history.append({"role": "user", "content": user_message})
    data = {
    "stream": True,
    "messages": history,
    "temperature": 0.6,
    "top_p": 0.95,
    "top_k": 20
    }
    stream_response = requests.post(url, headers=headers, json=data, verify=False, stream=True)
    client = sseclient.SSEClient(stream_response)
    assistant_message = ''
    for event in client.events():
        payload = json.loads(event.data)
        chunk = payload['choices'][0]['delta']['content']
        assistant_message += chunk
        print(chunk, end='')
    print()
    history.append({"role": "assistant", "content": assistant_message})
"""

TEXTGEN_OLDER_COMPLETION_STREAM = """\
import json
import requests
import sseclient  # pip install sseclient-py

url = "http://127.0.0.1:5000/v1/completions"

headers = {
    "Content-Type": "application/json"
}

data = {
    "prompt": "This is a cake recipe:\\n\\n1.",
    "max_tokens": 200,
    "temperature": 1,
    "top_p": 0.9,
    "seed": 10,
    "stream": True,
}

stream_response = requests.post(url, headers=headers, json=data, verify=False, stream=True)
client = sseclient.SSEClient(stream_response)

print(data['prompt'], end='')
for event in client.events():
    payload = json.loads(event.data)
    print(payload['choices'][0]['text'], end='')

print()
"""

TEXTGEN_CURRENT_COMPLETION_STREAM = TEXTGEN_OLDER_COMPLETION_STREAM.replace(
    '"max_tokens": 200,\n    "temperature": 1,\n    "top_p": 0.9,\n    "seed": 10,',
    '"max_tokens": 512,\n    "temperature": 0.6,\n    "top_p": 0.95,\n    "top_k": 20,',
)


# Hearth, like OpenAI and text-generation-webui itself since March 2026, ends every stream with
# `data: [DONE]`, which these examples as written pass to json.loads. They run with the one
# line docs/api.md tells their users to add.
SKIP_DONE = 'if event.data == "[DONE]":\n    break\n'


def skip_done(code: str) -> str:
    def add(match: re.Match) -> str:
        indent = match.group(1)
        return "".join(indent + line + "\n" for line in SKIP_DONE.splitlines()) + match.group(0)

    patched, count = re.subn(r"^( *)payload = json\.loads\(event\.data\)\n", add, code, flags=re.M)
    assert count == 1, code
    return patched


def test_the_done_line_is_the_one_the_docs_give():
    doc = (PROJECT_ROOT / "docs" / "api.md").read_text()
    assert re.search(r'\n( +)if event\.data == "\[DONE\]":\n\1    break\n', doc)


def test_the_docs_streaming_example(textgen, tmp_path):
    doc = (PROJECT_ROOT / "docs" / "api.md").read_text()
    [code] = [b for b in re.findall(r"```python\n(.*?)```", doc, flags=re.S) if "sseclient" in b]
    script = tmp_path / "docs_example.py"
    script.write_text(code.replace("http://127.0.0.1:5000", textgen.api_base))
    assert len(run([sys.executable, str(script)]).stdout.strip()) > 20


def run_example(code: str, server, tmp_path: Path, *lines: str) -> str:
    script, runner = tmp_path / "example.py", tmp_path / "runner.py"
    if "sseclient" in code:
        code = skip_done(code)
    script.write_text(code.replace("http://127.0.0.1:5000", server.api_base))
    runner.write_text(RUNNER)
    return run([sys.executable, str(runner), str(script), *lines]).stdout


@pytest.mark.parametrize(
    "code",
    [TEXTGEN_OLDER_CHAT_STREAM, TEXTGEN_CURRENT_CHAT_STREAM],
    ids=["older: message.content", "current: delta.content"],
)
def test_textgen_chat_streaming_examples(textgen, tmp_path, code):
    assert "max_tokens" not in code  # it streams until the model stops or the context is full
    output = run_example(code, textgen, tmp_path, "Hello!")
    assert len(output.strip()) > 200, output


@pytest.mark.parametrize(
    "code", [TEXTGEN_OLDER_COMPLETION_STREAM, TEXTGEN_CURRENT_COMPLETION_STREAM], ids=["older", "current"]
)
def test_textgen_completion_streaming_examples(textgen, tmp_path, code):
    assert TEXTGEN_CURRENT_COMPLETION_STREAM != TEXTGEN_OLDER_COMPLETION_STREAM
    output = run_example(code, textgen, tmp_path)
    assert output.startswith("This is a cake recipe:\n\n1.")
    assert len(output) > len("This is a cake recipe:\n\n1.") + 100


def test_textgen_python_chat_example_without_streaming(textgen, tmp_path):
    code = textwrap.dedent("""\
        import requests
        url = "http://127.0.0.1:5000/v1/chat/completions"
        headers = {
        "Content-Type": "application/json"
        }
        history = []
        while True:
            user_message = input("> ")
            history.append({"role": "user", "content": user_message})
            data = {
            "messages": history,
            "temperature": 0.6,
            "top_p": 0.95,
            "top_k": 20
            }
            response = requests.post(url, headers=headers, json=data, verify=False)
            assistant_message = response.json()['choices'][0]['message']['content']
            history.append({"role": "assistant", "content": assistant_message})
            print(assistant_message)
        """)
    assert len(run_example(code, textgen, tmp_path, "Hello!").strip()) > 200


TEXTGEN_CHARACTER_CURL = """\
curl http://127.0.0.1:5000/v1/chat/completions \\
-H "Content-Type: application/json" \\
-d '{
"messages": [
{
"role": "user",
"content": "Hello! Who are you?"
}
],
"mode": "chat-instruct",
"character": "Example",
"temperature": 0.6,
"top_p": 0.95,
"top_k": 20
}'
"""


def test_textgen_chat_instruct_example_with_the_example_character(textgen):
    reply = curl(TEXTGEN_CHARACTER_CURL, textgen, "http://127.0.0.1:5000")
    assert reply["object"] == "chat.completion" and reply["choices"][0]["message"]["content"].strip()
    # The same body's prompt: the shipped Example character, answering in chat-instruct mode.
    body = json.loads(TEXTGEN_CHARACTER_CURL.split("-d '", 1)[1].rsplit("'", 1)[0])
    prompt = requests.post(textgen.api_url + "/internal/chat-prompt", json=body, timeout=30).json()["prompt"]
    assert "Juniper is an enthusiastic hobby engineer" in prompt
    assert 'Write a single reply for the character "Juniper"' in prompt
    assert "You: Hello! Who are you?" in prompt and prompt.endswith("<|im_start|>assistant\nJuniper:")


# --- LocalAI ---------------------------------------------------------------------------------------

LOCALAI_CURLS = {
    "chat": """curl http://localhost:8080/v1/chat/completions -H "Content-Type: application/json" -d '{
     "model": "ggml-koala-7b-model-q4_0-r2.bin",
     "messages": [{"role": "user", "content": "Say this is a test!"}],
     "temperature": 0.7
   }'""",
    "edits": """curl http://localhost:8080/v1/edits -H "Content-Type: application/json" -d '{
     "model": "ggml-koala-7b-model-q4_0-r2.bin",
     "instruction": "rephrase",
     "input": "Black cat jumped out of the window",
     "temperature": 0.7
   }'""",
    "completions": """curl http://localhost:8080/v1/completions -H "Content-Type: application/json" -d '{
     "model": "ggml-koala-7b-model-q4_0-r2.bin",
     "prompt": "A long time ago in a galaxy far, far away",
     "temperature": 0.7
   }'""",
    "models": "curl http://localhost:8080/v1/models",
}


@pytest.mark.parametrize("name", list(LOCALAI_CURLS))
def test_localai_curl_examples(textgen, name):
    command = LOCALAI_CURLS[name].replace("ggml-koala-7b-model-q4_0-r2.bin", "tiny")  # the user's model
    reply = curl(command, textgen, "http://localhost:8080")
    expected = {
        "chat": "chat.completion",
        "edits": "edit",
        "completions": "text_completion",
        "models": "list",
    }
    assert reply["object"] == expected[name]
    if name == "completions":
        assert reply["usage"]["completion_tokens"] == 16  # OpenAI's legacy default
    if name in ("chat", "edits"):
        text = reply["choices"][0].get("message", {}).get("content") or reply["choices"][0].get("text")
        assert text


# --- Node ------------------------------------------------------------------------------------------


def test_node_openai_client_chat(api):
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        pytest.skip("Node.js is not installed")
    if not (NODE_DIR / "node_modules" / "openai").is_dir():
        run([npm, "install", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=300)
    env = {**os.environ, "OPENAI_API_BASE": api.api_url, "OPENAI_API_KEY": "sk-local", "OPENAI_MODEL": "tiny"}
    output = run([node, str(NODE_DIR / "chat.mjs")], env=env)
    reply = json.loads(output.stdout)
    assert reply["content"] and reply["usage"]["completion_tokens"] == 8
