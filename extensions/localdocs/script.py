"""LocalDocs: chat with your own files. GPT4All's LocalDocs, also from the API.

A collection is a named set of local folders. Its documents (text, Markdown, HTML, PDF,
source code) are split into chunks, embedded, and kept in `user_data/localdocs.sqlite3`.
When a chat turn names collections (the API's `localdocs` field, the switches in the chat
page's LocalDocs panel, or `default_collections`), the chunks most like the user's message
go into the prompt with their source paths, and the reply lists them.

It is an extension like any other (docs/extensions.md): these hooks are all it uses.
"""

from pathlib import Path

params = {
    "top_k": 3,  # chunks put into the prompt
    "min_score": 0.2,  # cosine similarity below which a chunk is left out
    "default_collections": [],  # searched when a request names none (the API's `localdocs`)
    "chunk_size": 800,  # characters
    "chunk_overlap": 100,
    "max_file_mb": 20,  # larger files are skipped
    "embedding_model": "",  # "": the server's default embedding model (all-MiniLM-L6-v2)
    # The folders (with their subfolders) collections may hold; "/" allows any. The home folder
    # by default: documents live there, while system folders hold configuration and secrets,
    # and whoever holds the admin key (by default the API key) may create collections.
    "folder_roots": ["~"],
}

HERE = Path(__file__).resolve().parent
docs = None  # this app's LocalDocs (script.py is loaded afresh for each app)

PROMPT_INTRO = (
    "Excerpts from the user's local documents (LocalDocs) that may help with the message below. "
    "Use them if they are relevant, and name the source files you use."
)


def setup(context):
    global docs
    from .embedding import make_embedder
    from .library import LocalDocs, Options
    from .store import Store

    settings = context.settings
    docs = LocalDocs(
        Store(settings.user_data_dir / "localdocs.sqlite3"),
        make_embedder(context.services, params["embedding_model"]),
        Options(
            chunk_size=int(params["chunk_size"]),
            chunk_overlap=int(params["chunk_overlap"]),
            max_file_bytes=int(params["max_file_mb"] * 1024 * 1024),
        ),
        private_dirs=[settings.user_data_dir],
        roots=folder_roots(params["folder_roots"]),
    )
    context.on_close(docs.close)


def folder_roots(value):
    """The folder_roots param as paths: a list of folders (one string is one folder)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("localdocs-folder_roots must be a list of folders")
    return [Path(v) for v in value]


def state_modifier(state):
    """Which collections this request searches: checked here, so an unknown one is a 404
    before anything else happens."""
    from modules.errors import InvalidRequest

    names = state.get("localdocs")
    if names is None:
        names = params["default_collections"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequest("localdocs must be a list of collection names.", param="localdocs")
    names = list(dict.fromkeys(names))
    for name in names:
        docs.collection(name)
    state["localdocs"] = names
    return state


def input_modifier(string, state, is_chat=False):
    """The new user message, with the best excerpts before it; the sources go to `extras`."""
    names = state.get("localdocs") or []
    if not names:
        return string
    hits = docs.search(names, string, int(params["top_k"]), float(params["min_score"]))
    state.setdefault("extras", {})["localdocs"] = {
        "collections": names,
        "sources": [
            {"collection": h.collection, "path": h.path, "score": h.score, "location": h.location}
            for h in hits
        ],
    }
    if not hits:
        return string
    return prompt_block(hits) + "\n\n" + string


def prompt_block(hits):
    excerpts = "\n\n".join(f"[{i}] Source: {h.path} ({h.location})\n{h.text}" for i, h in enumerate(hits, 1))
    return f"<localdocs>\n{PROMPT_INTRO}\n\n{excerpts}\n</localdocs>"


def custom_js():
    return (HERE / "localdocs.js").read_text(encoding="utf-8")


def custom_css():
    return (HERE / "localdocs.css").read_text(encoding="utf-8")


def ui():
    return [
        {"param": "top_k", "type": "number", "label": "Excerpts per message", "min": 1, "max": 20, "step": 1},
        {
            "param": "min_score",
            "type": "number",
            "label": "Minimum similarity",
            "min": -1,
            "max": 1,
            "step": 0.05,
            "help": "Excerpts less similar to the message than this are left out.",
        },
    ]


def ui_blueprint():
    from .routes import ui_blueprint as make

    return make(lambda: docs)


def api_blueprint():
    from .routes import api_blueprint as make

    return make(lambda: docs)
