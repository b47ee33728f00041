"""The OpenAI-compatible API, as an extension: `--api` (or `--extensions openai`) enables it.

text-generation-webui's `openai-embedding_model`, `openai-embedding_device` and
`openai-debug` keys in settings.yaml still work: they set Hearth's own settings
(embedding_model, embedding_device, api_debug).
"""

params: dict = {}


def blueprint():
    """The API, with the other extensions' `api_blueprint`s mounted inside it."""
    from modules.app import services

    from .api import create_blueprint

    return create_blueprint(children=services().extensions.blueprints("api_blueprint"))
