"""LocalDocs in a real server (gevent): index from the API while the server keeps answering,
then chat with the official OpenAI client and the `localdocs` field, whole and streamed."""

from __future__ import annotations

import time

import pytest
import requests
from localdocs_support import allow_folders, make_documents

pytest.importorskip("sentence_transformers")


def test_index_and_chat_through_a_running_server(server, tmp_path, user_data):
    from openai import OpenAI

    folder = make_documents(tmp_path)
    allow_folders(user_data, tmp_path)
    proc = server("--api", "--extensions", "localdocs")
    base = proc.api_url + "/internal/localdocs"
    created = requests.post(base, json={"name": "home", "folders": [str(folder)]}, timeout=30)
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 120
    while True:
        # The server answers while the embedding thread works (nothing runs on gevent's loop).
        assert requests.get(proc.api_base + "/health", timeout=5).status_code == 200
        state = requests.get(f"{base}/home", timeout=10).json()
        if state["index"]["state"] not in ("scanning", "indexing"):
            break
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state["index"]["state"] == "done" and state["files"] == 6, state

    client = OpenAI(base_url=proc.api_url, api_key="none")
    question = [{"role": "user", "content": "What is the name of the lighthouse keeper's cat?"}]
    reply = client.chat.completions.create(
        model="tiny", messages=question, max_tokens=3, extra_body={"localdocs": ["home"], "history_id": "cat"}
    )
    sources = reply.model_extra["localdocs"]["sources"]
    assert sources[0]["path"].endswith("lighthouse.pdf") and sources[0]["collection"] == "home"
    # Saved with the chat the UI shows: the question as asked (no excerpts) and the sources.
    saved = requests.get(proc.ui_url + "/ui/api/chats/cat", params={"mode": "instruct"}, timeout=10).json()
    question_saved = {key: saved["messages"][0][key] for key in ("role", "content", "id")}
    assert question_saved == {"role": "user", "content": question[0]["content"], "id": 1}
    assert set(saved["messages"][0]) == {"role", "content", "id", "time"}  # no excerpts, no extras
    assert saved["messages"][1]["extras"]["localdocs"]["sources"] == sources

    stream = client.chat.completions.create(
        model="tiny", messages=question, max_tokens=3, stream=True, extra_body={"localdocs": ["home"]}
    )
    finals = [chunk.model_extra["localdocs"] for chunk in stream if chunk.model_extra.get("localdocs")]
    assert len(finals) == 1 and finals[0]["sources"][0]["path"].endswith("lighthouse.pdf")

    prompt = requests.post(
        proc.api_url + "/internal/chat-prompt", timeout=30, json={"messages": question, "localdocs": ["home"]}
    ).json()["prompt"]
    assert f"Source: {folder / 'lighthouse.pdf'}" in prompt and "Biscuit" in prompt
