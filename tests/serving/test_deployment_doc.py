"""docs/deployment.md stays true: its binding table, its flags and its gunicorn command."""

from __future__ import annotations

import re

from servers import PROJECT_ROOT
from serving_support import GUNICORN_COMMAND

from modules.serving.listeners import bind_error, plan
from modules.settings import all_fields, load_settings

DOC = (PROJECT_ROOT / "docs" / "deployment.md").read_text()
ADDRESS = re.compile(r"ADDR|\d+\.\d+\.\d+\.\d+|::1|::")
OTHER_TOOLS_FLAGS = {  # other programs' flags quoted in the page: gunicorn, cloudflared, openssl, curl
    "--certfile",
    "--keyfile",
    "--graceful-timeout",
    "--no-autoupdate",
    "--url",
    "--cacert",
    # llama-server's, vLLM's and llama-cpp-python's (--interrupt_requests, --logits_all), for
    # the fleet's upstreams
    "--alias",
    "--host",
    "--port",
    "--jinja",
    "--threads-http",
    "--max-num-seqs",
    "--interrupt",
    "--logits",
}


def table_rows(header: str) -> list[list[str]]:
    block = DOC.split(header + "\n", 1)[1]
    rows = []
    for line in block.splitlines()[1:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_binding_table_matches_the_listeners():
    rows = table_rows("| flags | UI listens on | API listens on |")
    assert len(rows) == 6
    for flags_cell, ui_cell, api_cell in rows:
        flags = " ".join(re.findall(r"`(--[^`]+)`", flags_cell)).replace("ADDR", "192.0.2.7").split()
        listeners = plan(load_settings(["--api", *flags], {}))
        shown = {
            side: [a.replace("ADDR", "192.0.2.7") for a in ADDRESS.findall(cell)]
            for side, cell in (("ui", ui_cell), ("api", api_cell))
        }
        for side in ("ui", "api"):
            assert [listener.host for listener in listeners if listener.side == side] == shown[side], flags


def test_every_flag_on_the_page_exists():
    known = {meta["flag"] for meta in all_fields() if meta["flag"]}
    known |= {"--no-" + flag[2:] for flag in known}
    quoted = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", DOC))
    assert quoted - known - OTHER_TOOLS_FLAGS == set()


def test_the_busy_port_line_is_the_servers():
    from modules.serving.listeners import Listener

    line = bind_error(Listener("api", "127.0.0.1", 5000, "--api-port"), OSError(98, "Address already in use"))
    assert f"hearth: error: {line}" in DOC


def test_the_gunicorn_command_is_the_tested_one():
    assert GUNICORN_COMMAND.format(port=5000) in DOC
