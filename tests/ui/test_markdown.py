"""Rendering replies: prose as Markdown, fenced code as highlighted monospace blocks with a
copy button, updated in place while a reply streams."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication, QTextDocument
from PySide6.QtWidgets import QApplication

from desktop.ui.markdown_view import CodeBlock, FittedBrowser, MarkdownView, Segment, split_markdown
from desktop.ui.theme import LIGHT

REPLY = """# Result

Some **bold** and *italic* text with a [link](https://example.org).

| a | b |
|---|---|
| 1 | 2 |

```python
def add(a, b):
    return a + b
```

- one
- two
"""


def test_fenced_code_is_cut_out_of_the_prose():
    assert split_markdown(REPLY) == [
        Segment("text", "# Result\n\nSome **bold** and *italic* text with a "
                        "[link](https://example.org).\n\n| a | b |\n|---|---|\n| 1 | 2 |"),
        Segment("code", "def add(a, b):\n    return a + b", "python"),
        Segment("text", "- one\n- two"),
    ]


def test_an_unclosed_fence_runs_to_the_end_while_streaming():
    assert split_markdown("Look:\n~~~~js\nlet x = 1;\n```\nstill code") == [
        Segment("text", "Look:"), Segment("code", "let x = 1;\n```\nstill code", "js")]
    assert split_markdown("") == []


def test_a_reply_renders_markdown_and_code_blocks(qtbot):
    view = MarkdownView(LIGHT)
    qtbot.addWidget(view)
    view.resize(600, 400)
    view.set_markdown(REPLY)
    browsers = view.findChildren(FittedBrowser)
    assert len(browsers) == 2
    document: QTextDocument = browsers[0].document()
    assert "Result" in document.toPlainText()
    html = document.toHtml()
    assert "font-weight:700" in html and "font-style:italic" in html
    assert 'href="https://example.org"' in html
    [block] = view.code_blocks()
    assert block.code == "def add(a, b):\n    return a + b"
    qtbot.waitUntil(lambda: not block.highlighter.busy, timeout=10_000)  # coloured in slices
    fragments = list(_fragments(block.view.document()))
    colours = {f.charFormat().foreground().color().name() for f in fragments}
    assert len(colours) > 1  # keywords and names in different colours
    assert all(f.charFormat().fontFixedPitch() for f in fragments)


def test_the_copy_button_copies_exactly_the_code(qtbot):
    view = MarkdownView(LIGHT)
    qtbot.addWidget(view)
    view.set_markdown("```sh\necho 'hi'\n```")
    [block] = view.findChildren(CodeBlock)
    block.copy_button.click()
    assert QGuiApplication.clipboard().text() == "echo 'hi'"
    assert block.copy_button.text() == "Copied"


def test_streaming_updates_keep_the_finished_segments(qtbot):
    view = MarkdownView(LIGHT)
    qtbot.addWidget(view)
    view.set_markdown("Intro text.\n\n```py\nx = 1")
    first_text, first_code = view.findChildren(FittedBrowser)[0], view.code_blocks()[0]
    view.set_markdown("Intro text.\n\n```py\nx = 1\ny = 2\n```\nDone.")
    QApplication.processEvents()
    assert view.findChildren(FittedBrowser)[0] is first_text
    assert view.code_blocks()[0] is first_code and first_code.code == "x = 1\ny = 2"


def test_images_and_local_files_are_never_loaded(qtbot, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not really an image")
    browser = FittedBrowser()
    qtbot.addWidget(browser)
    assert browser.loadResource(QTextDocument.ResourceType.ImageResource.value,
                                secret.as_uri()) is None


def _fragments(document: QTextDocument):
    block = document.begin()
    while block.isValid():
        iterator = block.begin()
        while not iterator.atEnd():
            yield iterator.fragment()
            iterator += 1
        block = block.next()
