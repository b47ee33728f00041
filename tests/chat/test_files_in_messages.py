"""Files in a message: reading them into text (hostile bytes included), putting their text
into the prompt, and cutting the newest message's files to fit the context, with notices."""

from __future__ import annotations

import zipfile
from io import BytesIO

import pytest
from document_files import docx_bytes, pdf_bytes
from fake_model import words

from modules.chat.attachments import checked_file_name, fit_files, with_files
from modules.chat.documents import UnreadableFile, read_document
from modules.chat.messages import Attachment, ChatMessage, ChatOptions
from modules.errors import InvalidRequest


def test_text_markdown_and_code_are_read_as_they_are():
    assert read_document("notes.txt", b"Tuesday\n").text == "Tuesday\n"
    assert read_document("README.md", b"# Title").kind == "markdown"
    assert read_document("a.py", b"def f(): pass").kind == "code"
    assert read_document("old.txt", "café".encode("latin-1")).text == "café"  # not UTF-8
    assert read_document("bom.txt", b"\xef\xbb\xbfhello").text == "hello"
    html = read_document("page.html", b"<p>Hi <b>there</b></p><script>alert(1)</script>")
    assert html.text == "Hi there" and html.kind == "html"


def test_pdf_and_docx_become_text():
    pdf = read_document("report.pdf", pdf_bytes(["The secret word is PINEAPPLE."]))
    assert "PINEAPPLE" in pdf.text and pdf.pages == 1 and pdf.kind == "pdf"
    docx = read_document("memo.docx", docx_bytes(["First paragraph.", "Second."], [["a", "b"], ["c", "d"]]))
    assert docx.kind == "docx"
    assert docx.text == "First paragraph.\nSecond.\na | b\nc | d"


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("fake.pdf", b"this is not a pdf at all", "not a PDF"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n%%EOF" + b"\0" * 50, "damaged PDF"),
        ("blob.txt", b"\0\1\2binary", "binary"),
        ("zip.docx", b"PK\x03\x04 not really a zip", "Word document"),
        ("other.docx", b"", "Word document"),
        ("renamed.txt", pdf_bytes(["x"]), "PDF with another name"),
        ("bomb.docx", docx_bytes(["x"], prolog='<!DOCTYPE lolz [<!ENTITY lol "lol">]>'), "entities"),
    ],
)
def test_unreadable_files_say_why(name, data, says):
    with pytest.raises(UnreadableFile, match=says):
        read_document(name, data)


def test_a_zip_without_a_document_is_not_a_word_file():
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "hi")
    with pytest.raises(UnreadableFile, match=r"no word/document\.xml"):
        read_document("x.docx", out.getvalue())


@pytest.mark.parametrize("name", ["../evil.txt", "a/b.txt", "..\\evil.txt", "..", "bad\nname.txt", "x" * 300])
def test_file_names_with_folders_or_controls_are_refused(name):
    with pytest.raises(InvalidRequest):
        checked_file_name(name)


def test_ordinary_file_names_pass():
    assert checked_file_name("Rapport final (v2).pdf") == "Rapport final (v2).pdf"
    assert checked_file_name("..hidden but fine.txt") == "..hidden but fine.txt"
    assert checked_file_name("  ") == "file"


def test_files_come_before_the_question_in_the_prompt():
    message = ChatMessage(
        "user", "What does it say?", attachments=(Attachment("a.txt", "text", "It says hi."),)
    )
    assert (
        with_files(message).content == "[File: a.txt]\nIt says hi.\n[End of file: a.txt]\n\nWhat does it say?"
    )
    assert with_files(message).attachments == ()


def test_fair_shares_cut_the_long_file_not_the_short_one():
    short = Attachment("short.txt", "text", "tiny note " * 5)  # 10 words
    long = Attachment("long.txt", "text", "word " * 1000)
    texts, notices = fit_files([short, long], 200, words)
    assert texts[0] == short.text
    assert 150 <= words(texts[1]) <= 190
    assert len(notices) == 1 and "long.txt was cut" in notices[0]
    left_out, notices = fit_files([long], 3, words)
    assert left_out == [None] and "left out" in notices[0]


def test_the_newest_files_are_cut_to_fit_the_context(service, make_model):
    model = make_model(n_ctx=400)
    big = Attachment("book.txt", "text", " ".join(f"w{i}" for i in range(5000)))
    messages = [
        ChatMessage("user", "old question " + "x " * 30),
        ChatMessage("assistant", "old answer"),
        ChatMessage("user", "Summarize the book.", attachments=(big,)),
    ]
    options = ChatOptions(mode="instruct", instruction_template="ChatML")
    prepared = service.prepare(messages, options, model, count_tokens=words, max_tokens=100)
    assert words(prepared.prompt) <= 300
    assert "[File: book.txt]" in prepared.prompt and "w0 w1 w2" in prepared.prompt
    assert "w4999" not in prepared.prompt
    assert prepared.notices and "book.txt was cut" in prepared.notices[0]
    assert "Summarize the book." in prepared.prompt.split("[End of file: book.txt]")[1]


def test_older_files_are_whole_or_dropped_with_their_turn(service, make_model):
    old = Attachment("old.txt", "text", "OLD-FILE " * 40)
    messages = [
        ChatMessage("user", "Look", attachments=(old,)),
        ChatMessage("assistant", "Seen."),
        ChatMessage("user", "And now?"),
    ]
    options = ChatOptions(mode="instruct", instruction_template="ChatML")
    roomy = service.prepare(messages, options, make_model(n_ctx=4000), count_tokens=words, max_tokens=100)
    assert roomy.prompt.count("OLD-FILE") == 40 and not roomy.notices
    tight = service.prepare(messages, options, make_model(n_ctx=130), count_tokens=words, max_tokens=100)
    assert "OLD-FILE" not in tight.prompt and tight.truncated
