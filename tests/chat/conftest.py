"""Fixtures for the chat engine: stores on temporary folders and a fake model description
(no model is needed; tests count tokens as words)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fake_model import MODEL

from modules.chat.characters import CharacterStore
from modules.chat.history import HistoryStore
from modules.chat.service import ChatService
from modules.chat.templates import TemplateStore, load_model_table
from modules.engines.base import ModelInfo

REPO = Path(__file__).resolve().parents[2]
SHIPPED_TEMPLATES = REPO / "instruction-templates"
SHIPPED_CHARACTERS = REPO / "characters"


@pytest.fixture
def model() -> ModelInfo:
    """A model without a template of its own and a name that matches no table rule."""
    return MODEL


@pytest.fixture
def make_model(model: ModelInfo):
    def make(**changes) -> ModelInfo:
        return dataclasses.replace(model, **changes)

    return make


@pytest.fixture
def user_data(tmp_path: Path) -> Path:
    path = tmp_path / "user_data"
    (path / "characters").mkdir(parents=True)
    return path


@pytest.fixture
def characters(user_data: Path) -> CharacterStore:
    return CharacterStore(builtin_dir=SHIPPED_CHARACTERS, user_dir=user_data / "characters")


@pytest.fixture
def templates(user_data: Path) -> TemplateStore:
    table = load_model_table(SHIPPED_TEMPLATES / "models.yaml", user_data / "models.yaml")
    return TemplateStore(dirs=[SHIPPED_TEMPLATES, user_data / "instruction-templates"], model_table=table)


@pytest.fixture
def history(user_data: Path) -> HistoryStore:
    return HistoryStore(root=user_data / "logs")


@pytest.fixture
def service(characters, templates, history) -> ChatService:
    return ChatService(characters=characters, templates=templates, history=history)
