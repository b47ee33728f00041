"""Character files: formats, the user folder winning, create/update/delete, unsafe names."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from modules.chat.characters import CharacterStore
from modules.errors import InvalidRequest, NotFound


def test_shipped_characters(characters):
    keys = [c.key for c in characters.list()]
    assert "Assistant" in keys
    personas = [c for c in characters.list() if c.example_dialogue and c.picture]
    assert personas, "a shipped persona with example dialogue and a picture"
    for persona in personas:
        assert persona.builtin and persona.picture.stat().st_size < 50_000
        assert persona.picture.read_bytes().startswith(b"\x89PNG")


def test_example_ships_for_text_generation_webuis_documentation(characters):
    # Its chat-instruct example names "character": "Example" (run in tests/api/test_api_examples.py).
    example = characters.get("Example")
    assert example.builtin and example.name == "Juniper"
    assert example.greeting and example.context and example.example_dialogue
    with Image.open(example.picture) as picture:
        assert (example.picture.name, picture.format, picture.size) == ("Example.png", "PNG", (128, 128))


def test_yaml_json_and_alternative_fields(characters, user_data):
    folder = user_data / "characters"
    (folder / "Y.yaml").write_text(
        "name: Yuki\ngreeting: Hi {{user}}\ncontext: Yuki is kind.\nyour_name: Sam\n"
    )
    (folder / "J.json").write_text(json.dumps({"name": "Jo", "context": "c", "user": "Pat"}))
    (folder / "P.yaml").write_text(
        "char_name: Pyg\nchar_persona: shy\nworld_scenario: a library\n"
        "char_greeting: Oh, hi.\nexample_dialogue: |\n  <START>\n  You: hi\n  Pyg: hello\n"
    )
    y, j, p = characters.get("Y"), characters.get("J"), characters.get("P")
    assert (y.name, y.greeting, y.context, y.user_name) == (
        "Yuki",
        "Hi {{user}}",
        "Yuki is kind.",
        "Sam",
    )
    assert (j.name, j.user_name, j.greeting) == ("Jo", "Pat", "")
    assert p.name == "Pyg" and p.greeting == "Oh, hi."
    assert p.context == "Pyg's Persona: shy\nScenario: a library"
    assert p.example_dialogue.startswith("<START>\nYou: hi")
    assert not y.builtin


def test_picture_is_found_by_name(characters, user_data):
    folder = user_data / "characters"
    (folder / "Pic.yaml").write_text("name: Pic\n")
    (folder / "Pic.jpg").write_bytes(b"\xff\xd8\xff\xe0fake")
    assert characters.get("Pic").picture == folder / "Pic.jpg"


def test_user_character_wins_a_name_clash(characters, user_data):
    (user_data / "characters" / "Assistant.yaml").write_text("name: Mine\ncontext: mine\n")
    assert characters.get("Assistant").name == "Mine"
    assert [c.name for c in characters.list() if c.key == "Assistant"] == ["Mine"]
    characters.delete("Assistant")  # removes the user's copy: the shipped one is back
    assert characters.get("Assistant").builtin


def test_create_update_delete(characters, user_data):
    created = characters.save("Bob", name="Bob", context="Bob fixes bikes.\nHe is calm.", greeting="Yo")
    assert created.context == "Bob fixes bikes.\nHe is calm." and not created.builtin
    assert (user_data / "characters" / "Bob.yaml").is_file()
    with pytest.raises(InvalidRequest, match="already exists"):
        characters.save("Bob", context="again")
    updated = characters.save("Bob", name="Robert", context="new", overwrite=True)
    assert (updated.name, updated.context) == ("Robert", "new")
    assert "Bob" in [c.key for c in characters.list()]
    characters.delete("Bob")
    with pytest.raises(NotFound):
        characters.get("Bob")
    with pytest.raises(NotFound):
        characters.delete("Bob")


def test_writes_never_touch_the_shipped_folder(characters, tmp_path):
    builtin = tmp_path / "shipped"
    builtin.mkdir()
    (builtin / "Base.yaml").write_text("name: Base\n")
    store = CharacterStore(builtin_dir=builtin, user_dir=tmp_path / "user")
    store.save("Base", context="user copy", overwrite=True)
    assert (builtin / "Base.yaml").read_text() == "name: Base\n"
    assert store.get("Base").context == "user copy"


def test_deleting_a_shipped_character_is_refused(characters):
    with pytest.raises(InvalidRequest, match="cannot be deleted"):
        characters.delete("Assistant")
    assert characters.get("Assistant").builtin


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/tmp/x", "a/b", "x\0y", "..", ""])
def test_path_traversal_names_are_refused(characters, name, tmp_path):
    for action in (
        lambda: characters.get(name),
        lambda: characters.save(name, context="x"),
        lambda: characters.delete(name),
        lambda: characters.export_card(name),
    ):
        with pytest.raises(InvalidRequest):
            action()
    assert not list(tmp_path.rglob("x.yaml"))


def test_bad_pictures_are_refused(characters):
    with pytest.raises(InvalidRequest, match="PNG or JPEG"):
        characters.save("Bad", picture=b"GIF89a...")


def test_a_broken_user_file_is_skipped_in_the_list_and_reported_on_get(characters, user_data):
    (user_data / "characters" / "Broken.yaml").write_text("name: [unclosed\n")
    assert "Broken" not in [c.key for c in characters.list()]
    with pytest.raises(InvalidRequest, match=r"Broken\.yaml"):
        characters.get("Broken")
