"""The conversation list: newest first, new chat, rename in place, delete, and search.

Search looks at titles and, through the store's full-text index, at every message (also on
branches not shown); a hit opens its conversation at that message.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPoint, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop.store import ChatStore, Conversation
from desktop.ui.i18n import arg

_ID = Qt.ItemDataRole.UserRole
_MESSAGE = Qt.ItemDataRole.UserRole + 1
SEARCH_DELAY_MS = 200


class Sidebar(QWidget):
    """Conversations and search.

    Signals:
        newChatRequested(): "New chat" was pressed.
        conversationChosen(str, str): a conversation id and, for a search hit, the message
            id to show ("" otherwise).
        renameRequested(str, str): a conversation id and its new title.
        deleteRequested(str): a conversation id.
    """

    newChatRequested = Signal()
    conversationChosen = Signal(str, str)
    renameRequested = Signal(str, str)
    deleteRequested = Signal(str)

    def __init__(self, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self._store = store
        self._conversations: list[Conversation] = []
        self._current: str | None = None
        self._busy_id: str | None = None
        self._filling = False

        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        self.new_button = QPushButton(self.tr("New chat"), self)
        self.new_button.setToolTip(self.tr("Start a new conversation (Ctrl+N)"))
        self.new_button.setAccessibleName(self.tr("New chat"))
        self.new_button.clicked.connect(self.newChatRequested)
        layout.addWidget(self.new_button)
        self.search_box = QLineEdit(self)
        self.search_box.setPlaceholderText(self.tr("Search chats (Ctrl+F)"))
        self.search_box.setAccessibleName(self.tr("Search chats"))
        self.search_box.setClearButtonEnabled(True)
        self.search_box.textChanged.connect(self._on_search_text_changed)
        layout.addWidget(self.search_box)
        self.list = QListWidget(self)
        self.list.setAccessibleName(self.tr("Conversations"))
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.customContextMenuRequested.connect(self._on_context_menu_requested)
        self.list.itemClicked.connect(self._on_item_activated)
        self.list.itemActivated.connect(self._on_item_activated)
        self.list.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.list, 1)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._on_search_due)

    # --- public -------------------------------------------------------------------------

    @property
    def searching(self) -> bool:
        return bool(self.search_box.text().strip())

    def set_conversations(self, conversations: Sequence[Conversation],
                          current: str | None) -> None:
        self._conversations = list(conversations)
        self._current = current
        if self.searching:
            self._on_search_due()
        else:
            self._fill_conversations()

    def set_current(self, conversation_id: str | None) -> None:
        self._current = conversation_id
        if self.searching:
            return
        self._filling = True
        self.list.clearSelection()
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(_ID) == conversation_id:
                self.list.setCurrentItem(item)
                break
        self._filling = False

    def set_busy_conversation(self, conversation_id: str | None) -> None:
        """The conversation a reply is being written to (it cannot be deleted meanwhile)."""
        self._busy_id = conversation_id

    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def rename_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.flags() & Qt.ItemFlag.ItemIsEditable:
            self.list.editItem(item)

    # --- filling ------------------------------------------------------------------------

    def _fill_conversations(self) -> None:
        self._filling = True
        self.list.clear()
        for conversation in self._conversations:
            item = QListWidgetItem(conversation.title)
            item.setData(_ID, conversation.id)
            item.setData(_MESSAGE, "")
            item.setToolTip(conversation.title)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
            self.list.addItem(item)
            if conversation.id == self._current:
                self.list.setCurrentItem(item)
        if not self._conversations:
            self._add_note(self.tr("No chats yet"))
        self._filling = False

    def _add_note(self, text: str) -> None:
        item = QListWidgetItem(text)
        item.setFlags(Qt.ItemFlag.NoItemFlags)
        self.list.addItem(item)

    @Slot()
    def _on_search_text_changed(self) -> None:
        if self.searching:
            self._search_timer.start()
        else:
            self._search_timer.stop()
            self._fill_conversations()

    @Slot()
    def _on_search_due(self) -> None:
        query = self.search_box.text().strip()
        if not query:
            return
        titles = {c.id: c.title for c in self._conversations}
        words = query.lower().split()
        results: list[tuple[str, str, str]] = [
            (c.id, "", c.title) for c in self._conversations
            if all(w in c.title.lower() for w in words)]
        seen = {cid for cid, _, _ in results}
        for hit in self._store.search(query, limit=100, marks=("", "")):
            if hit.conversation_id in seen or hit.conversation_id not in titles:
                continue
            seen.add(hit.conversation_id)
            snippet = " ".join(hit.snippet.split())
            results.append((hit.conversation_id, hit.message_id,
                            f"{titles[hit.conversation_id]}\n{snippet}"))
        self._filling = True
        self.list.clear()
        for cid, message_id, text in results:
            item = QListWidgetItem(text)
            item.setData(_ID, cid)
            item.setData(_MESSAGE, message_id)
            item.setToolTip(text)
            self.list.addItem(item)
        if not results:
            self._add_note(arg(self.tr("Nothing matches “%1”"), query))
        self._filling = False

    # --- slots --------------------------------------------------------------------------

    @Slot(QListWidgetItem)
    def _on_item_activated(self, item: QListWidgetItem) -> None:
        cid = item.data(_ID)
        if cid and not self._filling:
            self.conversationChosen.emit(cid, item.data(_MESSAGE) or "")

    @Slot(QListWidgetItem)
    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._filling:
            return
        cid = item.data(_ID)
        old = next((c.title for c in self._conversations if c.id == cid), None)
        title = " ".join(item.text().split())
        if cid and old is not None and title and title != old:
            self.renameRequested.emit(cid, title)
        elif old is not None:
            self._filling = True
            item.setText(old)
            self._filling = False

    @Slot(QPoint)
    def _on_context_menu_requested(self, position: QPoint) -> None:
        item = self.list.itemAt(position)
        if item is None or not item.data(_ID):
            return
        cid = item.data(_ID)
        menu = QMenu(self)
        rename = menu.addAction(self.tr("Rename"))
        rename.setShortcut(QKeySequence(Qt.Key.Key_F2))
        rename.setEnabled(bool(item.flags() & Qt.ItemFlag.ItemIsEditable))
        delete = menu.addAction(self.tr("Delete"))
        delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        delete.setEnabled(cid != self._busy_id)
        chosen = menu.exec(self.list.viewport().mapToGlobal(position))
        if chosen is rename:
            self.list.editItem(item)
        elif chosen is delete:
            self.deleteRequested.emit(cid)

    def delete_current(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(_ID) and item.data(_ID) != self._busy_id:
            self.deleteRequested.emit(item.data(_ID))
