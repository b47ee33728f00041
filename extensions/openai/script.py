"""The OpenAI-compatible API, as an extension: `--api` (or `--extensions openai`) enables it.

text-generation-webui's `openai-embedding_model`, `openai-embedding_device` and
`openai-debug` keys in settings.yaml still work: they set Hearth's own settings
(embedding_model, embedding_device, api_debug).
"""

params: dict = {}
responses = None  # this app's stored responses (script.py is loaded afresh for each app)


def setup(context):
    """The Responses API's store (user_data/responses.sqlite3) and background jobs."""
    global responses
    from .response_jobs import BackgroundJobs
    from .response_store import ResponseStore
    from .state import StoredResponses

    settings = context.settings
    store = ResponseStore(
        settings.user_data_dir / "responses.sqlite3",
        max_age_seconds=settings.responses_store_days * 86400,
        max_bytes=settings.responses_store_mb * 1024 * 1024,
    )
    responses = StoredResponses(store, BackgroundJobs())
    context.on_close(responses.close)


def blueprint():
    """The API, with the other extensions' `api_blueprint`s mounted inside it."""
    from modules.app import services

    from .api import create_blueprint

    return create_blueprint(responses, children=services().extensions.blueprints("api_blueprint"))
