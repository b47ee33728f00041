from pathlib import Path

import pytest

from modules.chat.names import child_path, validate_history_id, validate_name
from modules.errors import InvalidRequest

UNSAFE = [
    "../x",
    "..",
    ".",
    "a/b",
    "a\\b",
    "/etc/passwd",
    "C:evil",
    "x\0y",
    "",
    " ",
    ".hidden",
    "trailing.",
    " lead",
    "con",
    "NUL.txt",
    "a\nb",
    "x" * 101,
]


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_names_are_refused(name):
    with pytest.raises(InvalidRequest):
        validate_name(name)


@pytest.mark.parametrize("name", ["Assistant", "Chiharu Yamada", "Dr. Who (v2)", "Élodie", "小明"])
def test_ordinary_names_pass(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("bad", ["../x", "/abs", "a/b", "x\0", "", "-lead", "a.b", "ä", "x" * 129, None, 5])
def test_unsafe_history_ids_are_refused(bad):
    with pytest.raises(InvalidRequest):
        validate_history_id(bad)


def test_history_ids_of_the_server_form_pass():
    assert validate_history_id("20240101-120000-ab12cd") == "20240101-120000-ab12cd"


def test_child_path_refuses_a_path_that_leaves_the_folder(tmp_path: Path):
    assert child_path(tmp_path, "a.json") == tmp_path / "a.json"
    with pytest.raises(InvalidRequest):
        child_path(tmp_path, "../a.json")
