"""The conversation list: newest first, rename in place, delete with undo, and search over
titles and message text."""

from __future__ import annotations

from PySide6.QtCore import Qt


def titles(window) -> list[str]:
    items = [window.sidebar.list.item(i) for i in range(window.sidebar.list.count())]
    return [item.text() for item in items]


def test_conversations_are_listed_newest_first_and_renamed_in_place(qtbot, window):
    store = window.store
    older = store.create_conversation("Older")
    store.add_message(older.id, "user", "first")
    newer = store.create_conversation("Newer")
    store.add_message(newer.id, "user", "second")
    window.refresh_conversations()
    assert titles(window) == ["Newer", "Older"]
    window.sidebar.conversationChosen.emit(older.id, "")
    assert window.current_id == older.id
    item = window.sidebar.list.item(1)
    item.setText("Renamed chat")  # what the in-place editor does when it commits
    assert store.get_conversation(older.id).title == "Renamed chat"
    assert window.windowTitle().startswith("Renamed chat")
    assert titles(window) == ["Newer", "Renamed chat"]


def test_delete_can_be_undone(qtbot, window, shortcut):
    store = window.store
    chat = store.create_conversation("Keep me")
    store.add_message(chat.id, "user", "important words")
    window.refresh_conversations()
    window.open_conversation(chat.id)
    window.sidebar.list.setCurrentRow(0)
    delete = shortcut(window, "Del")
    # Only while the list has the focus: Delete in the message box deletes text.
    assert delete.parent() is window.sidebar.list
    assert delete.context() == Qt.ShortcutContext.WidgetShortcut
    assert store.list_conversations() == []
    assert window.current_id is None
    assert window.banner.isVisible() and "Keep me" in window.banner.label.text()
    window.banner.action_button.click()
    assert [c.id for c in store.list_conversations()] == [chat.id]
    assert window.current_id == chat.id
    assert window.view.widgets()[0].message.text == "important words"


def test_search_finds_titles_and_message_text(qtbot, window):
    store = window.store
    a = store.create_conversation("Holiday plans")
    store.add_message(a.id, "user", "Where should we go in spring?")
    b = store.create_conversation("Cooking")
    store.add_message(b.id, "user", "How long do I boil an egg?")
    c = store.create_conversation("Physics")
    store.add_message(c.id, "user", "Why is the sky blue?")
    window.refresh_conversations()
    window.sidebar.search_box.setText("egg")
    qtbot.waitUntil(lambda: titles(window)[0].startswith("Cooking"), timeout=30_000)
    assert len(titles(window)) == 1 and "boil an egg" in titles(window)[0]
    window.sidebar.search_box.setText("holiday")
    qtbot.waitUntil(lambda: titles(window) == ["Holiday plans"], timeout=30_000)
    window.sidebar.search_box.setText("zebra")
    qtbot.waitUntil(lambda: titles(window) == ["Nothing matches “zebra”"], timeout=30_000)
    window.sidebar.search_box.setText("sky")
    qtbot.waitUntil(lambda: titles(window)[0].startswith("Physics"), timeout=30_000)
    qtbot.mouseClick(window.sidebar.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=window.sidebar.list.visualItemRect(window.sidebar.list.item(0)).center())
    assert window.current_id == c.id
    window.sidebar.search_box.clear()
    assert titles(window) == ["Physics", "Cooking", "Holiday plans"]


def test_shortcuts_focus_the_input_and_the_search(qtbot, window, shortcut):
    # focusWidget(): the widget that has the keyboard focus whenever the window is active
    # (hasFocus() would also need the window to be active, which offscreen is not certain).
    shortcut(window, "Ctrl+F")
    assert window.focusWidget() is window.sidebar.search_box
    shortcut(window, "Ctrl+L")
    assert window.focusWidget() is window.composer.input
    window.composer.input.setPlainText("draft")
    shortcut(window, "Ctrl+N")
    assert window.current_id is None
