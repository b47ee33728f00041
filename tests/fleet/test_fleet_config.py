"""Declaring upstreams: --upstream flags, user_data/upstreams.yaml, keys, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from servers import PROJECT_ROOT

from modules.engines.remote.config import key_variable, load_fleet_config
from modules.engines.remote.pool import offered_name
from modules.settings import SettingsError, load_settings


def test_flags_name_upstreams_and_repeat(tmp_path):
    settings = load_settings(
        ["--upstream", "box1=http://10.0.0.11:8080", "--upstream", "http://10.0.0.12:8080/v1"], {}
    )
    assert settings.upstream == ["box1=http://10.0.0.11:8080", "http://10.0.0.12:8080/v1"]
    config = load_fleet_config(settings.upstream, tmp_path / "missing.yaml", {})
    assert [(u.name, u.url, u.key) for u in config.upstreams] == [
        ("box1", "http://10.0.0.11:8080", None),
        ("10.0.0.12:8080", "http://10.0.0.12:8080/v1", None),
    ]
    assert config.health.interval == 5.0 and config.health.failures == 2


def test_the_file_adds_options_and_keys_never_come_from_flags(tmp_path):
    (tmp_path / "box2.key").write_text("sk-from-file\n")
    file = tmp_path / "upstreams.yaml"
    file.write_text(
        """
health: {interval: 1, timeout: 0.5, failures: 3}
upstreams:
  box1: {url: "http://10.0.0.11:8080", capacity: 8, kind: llama-server, key_env: BOX1}
  box2: {url: "https://box2.lan:8443", key_file: "%s", ca_file: /etc/ca.pem, models: ["a.gguf=llama", "b"]}
"""
        % (tmp_path / "box2.key")
    )
    environ = {"BOX1": "sk-one", key_variable("box3.lan"): "sk-three"}
    config = load_fleet_config(
        ["box1=http://10.0.0.99:8080", "box3.lan=http://10.0.0.13:8080"], file, environ
    )
    box1, box2, box3 = config.upstreams
    assert (box1.url, box1.capacity, box1.kind, box1.key) == (
        "http://10.0.0.99:8080",
        8,
        "llama-server",
        "sk-one",
    )
    assert (box2.key, box2.ca_file, dict(box2.models)) == (
        "sk-from-file",
        "/etc/ca.pem",
        {"a.gguf": "llama", "b": "b"},
    )
    assert box3.key == "sk-three" and key_variable("box3.lan") == "HEARTH_UPSTREAM_BOX3_LAN_KEY"
    assert (config.health.interval, config.health.timeout, config.health.failures) == (1, 0.5, 3)
    assert "sk-" not in repr(config)  # keys stay out of logs and tracebacks


@pytest.mark.parametrize(
    ("flags", "text", "says"),
    [
        (["box=ftp://x"], "", "--upstream box=ftp://x: 'ftp://x' is not an http:// or https:// URL"),
        (["b@d=http://x:1"], "", "the name 'b@d'"),
        (["http://user:secret@x:1"], "", "not the URL"),
        ([], "upstreams: {a: {capacity: 2}}", "upstream 'a': no url"),
        ([], "upstreams: {a: {url: 'http://x:1', capacity: 0}}", "upstreams.a.capacity"),
        ([], "upstreams: {a: {url: 'http://x:1', kind: tgi}}", "upstreams.a.kind"),
        ([], "upstreams: {a: {url: 'http://x:1', key_env: NOPE}}", "NOPE (key_env) is not set"),
        ([], "upstreams: {a: {url: 'http://x:1'}, b: {url: 'http://x:1/'}}", "the same URL as upstream 'a'"),
        ([], "health: {interval: 0}", "health.interval"),
        ([], "upstreams: [1, 2", "not valid YAML"),
    ],
)
def test_mistakes_are_one_line(tmp_path, flags, text, says):
    file = tmp_path / "upstreams.yaml"
    file.write_text(text)
    with pytest.raises(SettingsError) as raised:
        load_fleet_config(flags, file, {})
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_upstream_stops_start_up_with_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "server.py", "--user-data-dir", str(tmp_path), "--upstream", "x=gopher://a"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "hearth: error: --upstream x=gopher://a: 'gopher://a' is not an http:// or https:// URL"
    )


def test_llama_server_paths_become_model_names():
    assert offered_name("/models/Meta-Llama-3-8B.Q4_K_M.gguf") == "Meta-Llama-3-8B.Q4_K_M"
    assert offered_name("C:\\models\\phi.GGUF") == "phi"
    assert offered_name("llama3.2:3b") == "llama3.2:3b"


def test_a_front_end_without_upstreams_does_not_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "server.py", "--user-data-dir", str(tmp_path), "--no-local-model"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "hearth: error: --no-local-model: there is no model to serve; "
        "add --upstream NAME=URL (or upstreams.yaml)"
    )
