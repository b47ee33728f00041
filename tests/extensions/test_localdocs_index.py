"""LocalDocs indexing and retrieval with the real embedding model (all-MiniLM-L6-v2): a
folder of mixed files, the right chunk for a question, and incremental re-indexing."""

from __future__ import annotations

from pathlib import Path

import pytest
from localdocs_support import make_documents, pdf_bytes

from extensions.localdocs.embedding import OwnEmbedder
from extensions.localdocs.library import LocalDocs, Options
from extensions.localdocs.reading import html_text, read_chunks, split_text
from extensions.localdocs.store import Store
from modules.engines.crossthread import ThreadMailer
from modules.errors import InvalidRequest, NotFound

pytest.importorskip("sentence_transformers")


@pytest.fixture(scope="session")
def embedder():
    """One model for the whole session (loading it takes seconds)."""
    shared = OwnEmbedder(ThreadMailer())
    yield shared
    shared.close()


class _Kept:
    """The session's embedder, not closed by each test's LocalDocs."""

    def __init__(self, inner) -> None:
        self._inner = inner
        self.model_name = inner.model_name

    def run(self, job):
        return self._inner.run(job)

    def close(self) -> None:
        pass


@pytest.fixture
def docs(tmp_path, embedder) -> LocalDocs:
    user_data = tmp_path / "user_data"
    user_data.mkdir()
    library = LocalDocs(
        Store(user_data / "localdocs.sqlite3"),
        _Kept(embedder),
        Options(chunk_size=300, chunk_overlap=60),
        private_dirs=[user_data],
    )
    yield library
    library.close()


def index(docs: LocalDocs, name: str) -> dict:
    run = docs.start_index(name)
    assert run.wait(120), "indexing did not finish"
    assert run.state == "done", run.error
    return run.to_json()


def test_a_folder_of_mixed_files_is_indexed_and_the_right_chunk_found(docs, tmp_path):
    folder = make_documents(tmp_path)
    docs.create("home", [str(folder)])
    progress = index(docs, "home")
    # garden, dentist, bread, billing, lighthouse, inside-link; blob fails; the rest are skipped
    assert progress["files_total"] == 7 and progress["files_done"] == 7 and progress["progress"] == 1.0
    assert progress["files_indexed"] == 6 and progress["files_failed"] == 1
    listed = docs.list()[0]
    assert listed["files"] == 6 and listed["failed_files"] == 1 and listed["chunks"] >= 6
    assert listed["embedding_model"] == "all-MiniLM-L6-v2" and not listed["needs_index"]

    questions = {
        "What is the name of the lighthouse keeper's cat?": ("lighthouse.pdf", "Biscuit"),
        "When is my dentist appointment?": ("notes/dentist.md", "Tuesday at 14:30"),
        "What should I feed the sourdough starter?": ("site/bread.html", "rye flour"),
        "How is VAT added to the invoice total?": ("src/billing.py", "vat_rate"),
        "How do I keep slugs away from the beds?": ("garden.txt", "copper tape"),
    }
    for question, (path, words) in questions.items():
        best = docs.search(["home"], question, top_k=3)[0]
        assert best.path.endswith(path) or (path == "garden.txt" and best.path.endswith("inside-link.txt")), (
            question,
            best,
        )
        assert words in best.text and best.collection == "home" and best.score > 0.3
    hits = docs.search(["home"], "password launch code alert", top_k=20, min_score=-1)
    texts = " ".join(h.text for h in hits)
    assert "swordfish" not in texts and "launch code" not in texts  # hidden, and a link outside
    assert "alert(" not in texts and "color: red" not in texts  # script and style are not text
    assert all(Path(h.path).is_absolute() for h in hits)


def test_reindexing_picks_up_changed_and_new_files_and_forgets_deleted_ones(docs, tmp_path):
    from localdocs_support import bump

    folder = make_documents(tmp_path)
    docs.create("home", [str(folder)])
    index(docs, "home")
    chunks_before = docs.list()[0]["chunks"]

    bump(
        folder / "notes" / "dentist.md",
        "# Appointments\n\nThe dentist moved the appointment to Friday at 09:00.\n",
    )
    (folder / "garden.txt").unlink()
    (folder / "inside-link.txt").unlink()
    (folder / "notes" / "car.md").write_text("The car needs new winter tyres before November.\n")
    bump(folder / "src" / "billing.py")  # a newer time, the same bytes: not embedded again
    progress = index(docs, "home")
    assert progress["files_removed"] == 2
    assert progress["files_indexed"] == 2  # dentist.md and car.md
    # unchanged: the PDF, the HTML and the binary file by size and time, billing.py by its hash
    assert progress["files_total"] == 3 and progress["files_unchanged"] == 4

    best = docs.search(["home"], "When is my dentist appointment?", top_k=1)[0]
    assert "Friday at 09:00" in best.text
    everything = " ".join(h.text for h in docs.search(["home"], "dentist tomatoes tyres", 50, -1))
    assert "Tuesday at 14:30" not in everything and "tomatoes" not in everything
    assert "winter tyres" in everything
    assert docs.list()[0]["chunks"] < chunks_before + 2

    again = index(docs, "home")  # nothing changed: nothing is read
    assert again["files_total"] == 0 and again["files_indexed"] == 0 and again["files_removed"] == 0


def test_collections_are_searched_together_and_deleted(docs, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.md").write_text("Penguins live in the southern hemisphere.")
    (b / "y.md").write_text("Polar bears hunt seals on the Arctic sea ice.")
    docs.create("south", [str(a)])
    docs.create("north", [str(b)])
    index(docs, "south")
    index(docs, "north")
    hits = docs.search(["south", "north"], "Where do polar bears hunt?", top_k=2)
    assert hits[0].collection == "north"
    docs.delete("north")
    with pytest.raises(NotFound):
        docs.search(["north"], "bears", top_k=1)
    assert [c["name"] for c in docs.list()] == ["south"]


def test_folders_must_be_real_directories_outside_user_data(docs, tmp_path):
    (tmp_path / "file.txt").write_text("x")
    for bad in (
        "relative/path",
        str(tmp_path / "missing"),
        str(tmp_path / "file.txt"),
        str(tmp_path / "user_data"),
        str(tmp_path / "user_data" / "logs"),
        "",
    ):
        with pytest.raises(InvalidRequest):
            docs.create("c", [bad])
    for bad_name in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(InvalidRequest):
            docs.create(bad_name, [str(tmp_path)])
    docs.create("ok", [str(tmp_path) + "/./"])
    assert docs.list()[0]["folders"] == [str(tmp_path.resolve())]


def test_folders_may_be_limited_to_roots_and_are_never_hidden(tmp_path, embedder):
    allowed, other = tmp_path / "allowed", tmp_path / "other"
    for folder in (allowed / "notes", allowed / ".ssh", allowed / "notes" / ".secret", other):
        folder.mkdir(parents=True)
    (tmp_path / "link").symlink_to(other)
    library = LocalDocs(
        Store(tmp_path / "store.sqlite3"), _Kept(embedder), Options(), private_dirs=[], roots=[allowed]
    )
    try:
        library.create("ok", [str(allowed), str(allowed / "notes")])
        for refused in (other, tmp_path / "link", allowed / ".ssh", allowed / "notes" / ".secret", tmp_path):
            with pytest.raises(InvalidRequest) as caught:
                library.create("no", [str(refused)])
            assert caught.value.code == "folder_not_allowed", refused
            if refused == other:
                assert "localdocs-folder_roots" in caught.value.message
    finally:
        library.close()


def test_the_default_root_is_the_home_folder():
    from extensions.localdocs import script

    assert script.params["folder_roots"] == ["~"]
    assert script.folder_roots("/srv/docs") == [Path("/srv/docs")]
    with pytest.raises(ValueError):
        script.folder_roots([1])


def test_chunking_keeps_locations_and_overlap():
    code = "\n".join(f"line_{i} = {i}" for i in range(1, 101))
    chunks = split_text(code, 200, 40, prose=False)
    assert chunks[0].location.startswith("lines 1-")
    assert all(len(c.text) <= 200 for c in chunks)
    first_end = int(chunks[0].location.split("-")[1])
    second_start = int(chunks[1].location.split()[1].split("-")[0])
    assert second_start <= first_end  # a little overlap
    long_word = "x" * 1000
    assert [len(c.text) for c in split_text(long_word, 300, 0, prose=True)] == [300, 300, 300, 100]
    assert html_text("<p>a &amp; b</p><script>no()</script><p>c</p>") == "a & b\n\nc"
    pdf = read_chunks(Path("a.pdf"), pdf_bytes(["Hello PDF world."]), 500, 50)
    assert "Hello PDF world." in pdf[0].text
