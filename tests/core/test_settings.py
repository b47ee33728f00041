"""Layered settings: flag > OPENEDAI_* environment > settings.yaml > default, and one-line errors."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modules.settings import (
    PROJECT_ROOT,
    SettingsError,
    all_fields,
    build_parser,
    load_settings,
    reference_table,
)

LAYERS = ("file", "env", "cli")


def build(tmp_path: Path, *, file: dict | None = None, env: dict | None = None, cli: list[str] | None = None):
    argv = ["--user-data-dir", str(tmp_path)]
    if file is not None:
        lines = "".join(f"{key}: {value}\n" for key, value in file.items())
        (tmp_path / "settings.yaml").write_text(lines)
    return load_settings(argv + (cli or []), env or {})


# (setting, default, value per layer as written there, parsed value per layer)
KEYS = [
    (
        "api_port",
        5000,
        {"file": "5101", "env": "5102", "cli": "5103"},
        {"file": 5101, "env": 5102, "cli": 5103},
    ),
    (
        "ssl_certfile",
        None,
        {"file": "f.pem", "env": "e.pem", "cli": "c.pem"},
        {"file": Path("f.pem"), "env": Path("e.pem"), "cli": Path("c.pem")},
    ),
    (
        "api_enable_ipv6",
        False,
        {"file": "true", "env": "1", "cli": None},
        {"file": True, "env": True, "cli": True},
    ),
    (
        "embedding_model",
        "all-MiniLM-L6-v2",
        {"file": "f-model", "env": "e-model", "cli": "c-model"},
        {"file": "f-model", "env": "e-model", "cli": "c-model"},
    ),
]
ENV_NAMES = {
    "api_port": "OPENEDAI_PORT",
    "ssl_certfile": "OPENEDAI_CERT_PATH",
    "api_enable_ipv6": "OPENEDAI_ENABLE_IPV6",
    "embedding_model": "OPENEDAI_EMBEDDING_MODEL",
}

CASES = [(key, layers) for key in KEYS for n in range(0, 4) for layers in itertools.combinations(LAYERS, n)]


@pytest.mark.parametrize(
    ("key", "layers"), CASES, ids=[f"{k[0]}-{'+'.join(layers) or 'default'}" for k, layers in CASES]
)
def test_highest_layer_wins(tmp_path, key, layers):
    name, default, written, parsed = key
    file = {name: written["file"]} if "file" in layers else None
    env = {ENV_NAMES[name]: written["env"]} if "env" in layers else None
    flag = "--" + name.replace("_", "-")
    cli = ([flag] if written["cli"] is None else [flag, written["cli"]]) if "cli" in layers else None
    settings = build(tmp_path, file=file, env=env, cli=cli)
    winner = layers[-1] if layers else None
    assert getattr(settings, name) == (parsed[winner] if winner else default)


def test_no_flag_overrides_true_in_the_file(tmp_path):
    assert build(tmp_path, file={"api": "true"}, cli=["--no-api"]).api is False
    assert build(tmp_path, file={"api": "true"}).api is True


def test_lists_from_each_layer(tmp_path):
    assert build(tmp_path, file={"default_extensions": "[openai, example]"}).extensions == [
        "openai",
        "example",
    ]
    assert build(tmp_path, cli=["--extensions", "a", "b"]).extensions == ["a", "b"]


def test_textgen_webui_keys_in_settings_yaml(tmp_path):
    settings = build(
        tmp_path, file={"openai-embedding_model": "x-model", "openai-debug": 1, "localdocs-top_k": 7}
    )
    assert settings.embedding_model == "x-model"
    assert settings.api_debug is True
    assert settings.extension_params == {"localdocs": {"top_k": 7}}


def test_settings_flag_points_at_another_file(tmp_path):
    other = tmp_path / "elsewhere.yaml"
    other.write_text("ctx_size: 1234\n")
    assert load_settings(["--user-data-dir", str(tmp_path), "--settings", str(other)], {}).ctx_size == 1234


def test_api_flag_enables_the_openai_extension(tmp_path):
    assert build(tmp_path, cli=["--api"]).enabled_extensions == ["openai"]
    assert build(tmp_path, cli=["--extensions", "openai"]).api_enabled
    assert build(tmp_path).enabled_extensions == []


def test_admin_key_defaults_to_the_api_key(tmp_path):
    assert build(tmp_path, cli=["--api-key", "k"]).effective_admin_key == "k"
    assert build(tmp_path, cli=["--api-key", "k", "--admin-key", "a"]).effective_admin_key == "a"


BAD = [
    ({"cli": ["--api-port", "abc"]}, r"^command line --api-port: invalid value 'abc' for api_port"),
    ({"cli": ["--listen-port", "70000"]}, r"^command line --listen-port: .*listen_port: not a port"),
    ({"cli": ["--ctx-size", "-5"]}, r"^command line --ctx-size: .*ctx_size: must be >= 0"),
    ({"cli": ["--parallel", "0"]}, r"parallel: must be >= 1"),
    ({"cli": ["--frobnicate"]}, r"^command line: unrecognized arguments: --frobnicate"),
    ({"cli": ["--api-port"]}, r"^command line: argument --api-port: expected one argument"),
    ({"env": {"OPENEDAI_PORT": "abc"}}, r"^environment OPENEDAI_PORT: invalid value 'abc' for api_port"),
    ({"env": {"OPENEDAI_ENABLE_IPV6": "maybe"}}, r"^environment OPENEDAI_ENABLE_IPV6: .*api_enable_ipv6"),
    ({"file": {"api_port": "abc"}}, r"settings.yaml: key 'api_port': invalid value 'abc' for api_port"),
    ({"file": {"ctx_sise": "10"}}, r"settings.yaml: unknown key 'ctx_sise'"),
    ({"file": {"settings": "x.yaml"}}, r"settings.yaml: unknown key 'settings'"),
]


@pytest.mark.parametrize(("layers", "pattern"), BAD)
def test_bad_values_are_one_line_naming_source_and_key(tmp_path, layers, pattern):
    with pytest.raises(SettingsError) as caught:
        build(tmp_path, **layers)
    message = str(caught.value)
    assert "\n" not in message
    assert re.search(pattern, message), message


@pytest.mark.parametrize("text", ["api_port: [1, 2\n", "a: b: c\n", "\tctx_size: 1\n", "- just\n- a list\n"])
def test_malformed_yaml_is_one_line(tmp_path, text):
    (tmp_path / "settings.yaml").write_text(text)
    with pytest.raises(SettingsError) as caught:
        load_settings(["--user-data-dir", str(tmp_path)], {})
    assert "\n" not in str(caught.value) and "settings.yaml" in str(caught.value)


def test_server_prints_one_line_and_exits_2_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "server.py", "--user-data-dir", str(tmp_path), "--api-port", "abc"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("hearth: error: command line --api-port")
    assert "Traceback" not in result.stderr


def test_settings_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "settings.yaml").write_bytes(b"ctx_size: \xff\xfe\n")
    with pytest.raises(SettingsError, match=r"settings.yaml: not UTF-8 text") as caught:
        load_settings(["--user-data-dir", str(tmp_path)], {})
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--model", "nosuch"], "The model 'nosuch' does not exist. Available models:"),
        (["--loader", "foo"], "Unknown loader 'foo'"),
        (["--character", "Nobody"], "--character: there is no character 'Nobody' (there are: Ada, Assistant"),
        (["--character", "../x"], "The character name '../x' contains '/'"),
    ],
)
def test_a_model_loader_or_character_that_is_not_there_is_one_line(tmp_path, flags, says):
    """Values only the app can check (is there such a file?) stop start-up the same way."""
    from servers import free_port

    port = str(free_port())
    result = subprocess.run(
        [sys.executable, "server.py", "--user-data-dir", str(tmp_path), "--listen-port", port, *flags],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("hearth: error: ") and says in last, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_help_explains_every_flag():
    text = build_parser().format_help()
    for meta in all_fields():
        if meta["cli"]:
            assert meta["flag"] in text, meta["name"]
            assert meta["help"].split()[0] in text


def test_docs_configuration_lists_every_setting():
    doc = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    table = doc.split("<!-- settings-table:start -->\n")[1].split("<!-- settings-table:end -->")[0]
    assert table.strip() == reference_table().strip(), (
        "docs/configuration.md is out of date; regenerate the table with "
        'python -c "from modules.settings import reference_table; print(reference_table())"'
    )
