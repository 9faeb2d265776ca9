"""The main window: conversations on the left, the chat on the right, figures at the bottom.

The window only shows things and forwards what the user does: the engine runs in the
controller's thread and the store is the source of truth, so after any change the window
re-reads the branch on screen from the store and lets the chat view apply the difference.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QKeySequence,
    QShortcut,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop.engine import ChatEngine, InstalledModel, Model, list_models, resolve_model
from desktop.errors import ContextOverflowError, UserError
from desktop.paths import DEFAULT_MODEL_NAME
from desktop.store import Conversation, NotFoundError
from desktop.ui.bars import Banner, ModelBar, StatusBar
from desktop.ui.chat_settings import ChatSettings
from desktop.ui.chat_view import ChatView
from desktop.ui.composer import Composer
from desktop.ui.controller import ChatController, ReplyEnd
from desktop.ui.export_dialog import ExportDialog
from desktop.ui.i18n import arg
from desktop.ui.model_drop import has_files
from desktop.ui.models_dialog import ModelsDialog
from desktop.ui.planner import PlanResult
from desktop.ui.prefs import Preferences
from desktop.ui.server_process import ON, STARTING, LocalServer
from desktop.ui.server_status import ServerStatus
from desktop.ui.settings_dialog import SettingsDialog
from desktop.ui.sidebar import Sidebar
from desktop.ui.theme import Colors
from desktop.ui.welcome import WelcomePage
from desktop.ui.worker import ReplyStart

log = logging.getLogger(__name__)

CONTEXT_DELAY_MS = 250
UNDO_MS = 10_000


class MainWindow(QMainWindow):
    """OnnxChat's window.

    Signals:
        languageChosen(str): the user picked a language preference in the settings.
        themeChosen(str): the user picked a theme preference in the settings.
        closed(): the window was closed by the user (not replaced by a rebuilt one).
    """

    languageChosen = Signal(str)
    themeChosen = Signal(str)
    closed = Signal()

    def __init__(self, controller: ChatController, prefs: Preferences, colors: Colors,
                 language: str = "system", theme: str = "system", *,
                 server: LocalServer) -> None:
        super().__init__()
        self.controller = controller
        self.server = server
        self.store = controller.store
        self.prefs = prefs
        self.colors = colors
        self._language_pref = language
        self._theme_pref = theme
        self._conversation: Conversation | None = None
        self._draft = ChatSettings()
        self._replaced = False
        self._conversations: list[Conversation] = []
        self._models: list[InstalledModel] = []
        self.setWindowTitle("OnnxChat")
        self.resize(1180, 780)
        self._build()
        self._connect_controller()
        self._connect_server()
        self._context_timer = QTimer(self)
        self._context_timer.setSingleShot(True)
        self._context_timer.setInterval(CONTEXT_DELAY_MS)
        self._context_timer.timeout.connect(self._on_context_due)
        if prefs.geometry is not None:
            self.restoreGeometry(prefs.geometry)
        if prefs.splitter is not None:
            self.splitter.restoreState(prefs.splitter)
        self.setAcceptDrops(True)  # a .gguf file or model folder opens the export dialog

    # --- building -----------------------------------------------------------------------

    def _build(self) -> None:
        self.sidebar = Sidebar(self.store, self)
        self.sidebar.newChatRequested.connect(self.new_chat)
        self.sidebar.conversationChosen.connect(self._on_conversation_chosen)
        self.sidebar.renameRequested.connect(self._on_rename_requested)
        self.sidebar.deleteRequested.connect(self._on_delete_conversation_requested)

        right = QWidget(self)
        column = QVBoxLayout(right)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        self.model_bar = ModelBar(right)
        self.model_bar.modelChosen.connect(self._on_model_chosen)
        self.model_bar.deviceChosen.connect(self._on_device_chosen)
        self.model_bar.settingsRequested.connect(self.open_settings)
        self.model_bar.set_device(self.prefs.device)
        column.addWidget(self.model_bar)
        self.banner = Banner(right)
        column.addWidget(self.banner)
        self.pages = QStackedWidget(right)
        self.welcome = WelcomePage(self.pages)
        self.welcome.prepareRequested.connect(self._on_prepare_requested)
        chat_page = QWidget(self.pages)
        chat_column = QVBoxLayout(chat_page)
        chat_column.setContentsMargins(0, 0, 0, 12)
        self.view = ChatView(self.store, self.colors, chat_page)
        self.view.editSubmitted.connect(self._on_edit_submitted)
        self.view.regenerateRequested.connect(self._on_regenerate_requested)
        self.view.deleteRequested.connect(self._on_delete_message_requested)
        self.view.branchRequested.connect(self._on_branch_requested)
        self.composer = Composer(chat_page)
        self.composer.sendRequested.connect(self._on_send_requested)
        self.composer.stopRequested.connect(self.stop)
        self.composer.textEdited.connect(self._on_draft_edited)
        chat_column.addWidget(self.view, 1)
        composer_row = QVBoxLayout()
        composer_row.setContentsMargins(16, 0, 16, 0)
        composer_row.addWidget(self.composer)
        chat_column.addLayout(composer_row)
        self.pages.addWidget(chat_page)
        self.pages.addWidget(self.welcome)
        self.chat_page = chat_page
        column.addWidget(self.pages, 1)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.sidebar)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([260, 920])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self.server_status = ServerStatus(self.status)
        self.status.addPermanentWidget(self.server_status)
        self._build_menus()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu(self.tr("&File"))
        self.new_action = self._action(file_menu, self.tr("&New chat"), "Ctrl+N", self.new_chat)
        file_menu.addSeparator()
        self._action(file_menu, self.tr("Export this chat as &Markdown…"), None,
                     self._on_export_markdown_triggered)
        self._action(file_menu, self.tr("Export all chats as &JSON…"), None,
                     self._on_export_json_triggered)
        self._action(file_menu, self.tr("&Import chats from JSON…"), None,
                     self._on_import_json_triggered)
        file_menu.addSeparator()
        self.settings_action = self._action(file_menu, self.tr("&Settings…"), "Ctrl+,",
                                            self.open_settings)
        file_menu.addSeparator()
        self._action(file_menu, self.tr("&Quit"), "Ctrl+Q", self.close)
        chat_menu = self.menuBar().addMenu(self.tr("&Chat"))
        self._action(chat_menu, self.tr("&Focus the message box"), "Ctrl+L",
                     self.composer.focus_input)
        self._action(chat_menu, self.tr("&Search chats"), "Ctrl+F", self.sidebar.focus_search)
        self.stop_action = self._action(chat_menu, self.tr("S&top the reply"), "Esc", self.stop)
        self._action(chat_menu, self.tr("&Rename chat"), "F2", self.sidebar.rename_current)
        model_menu = self.menuBar().addMenu(self.tr("&Model"))
        self._action(model_menu, self.tr("&Prepare a model…"), None, self.open_export_dialog)
        self._action(model_menu, self.tr("&Manage models…"), None, self.open_models_dialog)
        self._action(model_menu, self.tr("&Refresh the model list"), None, self.refresh_models)
        model_menu.addSeparator()
        self.server_action = self._action(model_menu, self.tr("&Local server"), None,
                                          self._on_server_action_toggled, checkable=True)
        self.server_history_action = self._action(
            model_menu, self.tr("Save local server requests to the &history"), None,
            self._on_server_history_toggled, checkable=True)
        self.server_history_action.setChecked(self.prefs.server_history)
        help_menu = self.menuBar().addMenu(self.tr("&Help"))
        self._action(help_menu, self.tr("&About OnnxChat"), None, self._on_about_triggered)
        delete = QShortcut(QKeySequence(QKeySequence.StandardKey.Delete), self.sidebar.list)
        delete.setContext(Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(self.sidebar.delete_current)

    def _action(self, menu, text: str, shortcut: str | None, slot,
                checkable: bool = False) -> QAction:
        action = menu.addAction(text)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        return action

    def _connect_controller(self) -> None:
        c = self.controller
        c.modelLoadStarted.connect(self._on_model_load_started)
        c.modelLoaded.connect(self._on_model_loaded)
        c.modelLoadFailed.connect(self._on_model_load_failed)
        c.generatingChanged.connect(self._on_generating_changed)
        c.replyStarted.connect(self._on_reply_started)
        c.replyProgress.connect(self._on_reply_progress)
        c.replyEnded.connect(self._on_reply_ended)
        c.conversationsChanged.connect(self.refresh_conversations)
        c.planReady.connect(self._on_plan_ready)

    def _connect_server(self) -> None:
        self.server.stateChanged.connect(self._on_server_state_changed)
        self.server.countsChanged.connect(self._on_server_counts_changed)
        self.server.failed.connect(self._on_server_failed)
        self._on_server_state_changed(self.server.state)
        if self.server.counts:
            self._on_server_counts_changed(self.server.counts)

    # --- start --------------------------------------------------------------------------

    def start(self, requested_model: str | None = None) -> None:
        """Fill the lists, reopen the last conversation, and load a model if none is loaded."""
        self.refresh_conversations()
        last = self.prefs.last_conversation
        if last and any(c.id == last for c in self._conversations):
            self.open_conversation(last)
        else:
            self.new_chat()
        notice = self.store.take_notice()  # once, whichever front end starts first
        if notice:
            self.banner.show_message(notice, error=True)
        self.refresh_models()
        self._on_generating_changed(self.controller.generating)
        if self.controller.engine is not None:
            self._on_model_loaded(self.controller.engine)
            if self.controller.loading is not None:
                self._on_model_load_started(self.controller.loading.folder.name)
        elif self.controller.loading is not None:
            self._on_model_load_started(self.controller.loading.folder.name)
        else:
            folder = self._initial_model(requested_model)
            if folder is not None:
                self._load_model(folder)
        stats = self.controller.last_stats
        if stats is not None:
            self.status.set_reply_figures(stats.decode_tokens_per_s or None,
                                          stats.time_to_first_token_s)
        self._update_page()
        self._on_context_due()

    def _initial_model(self, requested: str | None) -> Path | None:
        """``--model``, else the model used last, else the default, else any usable one."""
        if requested:
            try:
                return resolve_model(requested)
            except UserError as exc:
                self.banner.show_message(str(exc), error=True)
        usable = [m for m in self._models if m.manifest is not None]
        last = self.prefs.model
        for entry in usable:
            if str(entry.path) == last:
                return entry.path
        for entry in usable:
            if entry.path.name == DEFAULT_MODEL_NAME:
                return entry.path
        return usable[0].path if usable else None

    # --- lists --------------------------------------------------------------------------

    @Slot()
    def refresh_conversations(self) -> None:
        try:
            self._conversations = self.store.list_conversations()
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
            return
        self.sidebar.set_conversations(self._conversations, self.current_id)

    @Slot()
    def refresh_models(self) -> None:
        self._models = list_models()
        folder = self.controller.model_folder
        self.model_bar.set_models(self._models, str(folder) if folder else None)
        self._update_page()

    def _update_page(self) -> None:
        """The first-run page while there is no model at all, the chat otherwise."""
        has_model = (self.controller.engine is not None or self.controller.loading is not None
                     or any(m.manifest is not None for m in self._models))
        self.pages.setCurrentWidget(self.chat_page if has_model else self.welcome)
        self._update_composer()

    def _update_composer(self) -> None:
        if self.controller.loading is not None and self.controller.engine is None:
            reason = self.tr("The model is loading…")
        elif self.controller.engine is None:
            reason = self.tr("Choose a model to start chatting.")
        else:
            reason = None
        self.composer.set_blocked(reason)

    # --- conversations ------------------------------------------------------------------

    @property
    def current_id(self) -> str | None:
        return self._conversation.id if self._conversation else None

    def _settings(self) -> ChatSettings:
        return (self.controller.chat_settings(self._conversation) if self._conversation
                else self._draft)

    @Slot()
    def new_chat(self) -> None:
        """Start an unsaved chat; it is stored (and titled) when its first message is sent."""
        self._conversation = None
        self._draft = ChatSettings()
        self.view.show_conversation([])
        self.sidebar.set_current(None)
        self.setWindowTitle("OnnxChat")
        self.composer.focus_input()
        self._schedule_context()

    def open_conversation(self, conversation_id: str, message_id: str = "") -> None:
        try:
            hidden = message_id and message_id not in {
                m.id for m in self.store.messages(conversation_id)}
            if hidden and conversation_id != self.controller.generating_conversation:
                self.store.select_branch(message_id)
            self._conversation = self.store.get_conversation(conversation_id)
            messages = self.controller.messages(conversation_id)
        except NotFoundError:
            self.refresh_conversations()
            self.new_chat()
            return
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
            return
        self.view.show_conversation(messages)
        reply = self.controller.reply_id
        if self.controller.generating_conversation == conversation_id and reply:
            self.view.update_streaming(reply, self.controller.reply_text)
        self.sidebar.set_current(conversation_id)
        self.setWindowTitle(f"{self._conversation.title} — OnnxChat")
        self.prefs.last_conversation = conversation_id
        self._schedule_context()

    def _reload_view(self) -> None:
        """Re-read the branch on screen after a change, keeping unchanged widgets."""
        if self._conversation is None:
            return
        try:
            self.view.sync(self.controller.messages(self._conversation.id))
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
        reply = self.controller.reply_id
        if self.controller.generating_conversation == self.current_id and reply:
            self.view.update_streaming(reply, self.controller.reply_text)
        self._schedule_context()

    @Slot(str, str)
    def _on_conversation_chosen(self, conversation_id: str, message_id: str) -> None:
        if conversation_id != self.current_id or message_id:
            self.open_conversation(conversation_id, message_id)

    @Slot(str, str)
    def _on_rename_requested(self, conversation_id: str, title: str) -> None:
        try:
            renamed = self.store.rename_conversation(conversation_id, title)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
        else:
            if renamed.id == self.current_id:
                self._conversation = renamed
                self.setWindowTitle(f"{renamed.title} — OnnxChat")
        self.refresh_conversations()

    @Slot(str)
    def _on_delete_conversation_requested(self, conversation_id: str) -> None:
        """Delete at once and offer Undo (the chat is kept as an export until then)."""
        if conversation_id == self.controller.generating_conversation:
            return
        try:
            title = self.store.get_conversation(conversation_id).title
            saved = self.store.export_json([conversation_id])
            self.store.delete_conversation(conversation_id)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
            return
        if conversation_id == self.current_id:
            self.new_chat()
        self.refresh_conversations()
        self.banner.show_message(arg(self.tr("Deleted “%1”."), title),
                                 action_text=self.tr("Undo"),
                                 action=lambda: self._undo_delete(conversation_id, saved),
                                 timeout_ms=UNDO_MS)

    def _undo_delete(self, conversation_id: str, saved: bytes) -> None:
        try:
            self.store.import_json(saved)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
            return
        self.refresh_conversations()
        self.open_conversation(conversation_id)

    # --- sending and replies --------------------------------------------------------------

    @Slot(str)
    def _on_send_requested(self, text: str) -> None:
        if self.controller.generating or self.controller.engine is None:
            return
        try:
            conversation_id = self.controller.send(self.current_id, text, self._draft)
        except UserError as exc:
            self.banner.show_message(self._refusal(exc), error=True)
            return
        self.composer.clear()
        if self._conversation is None:
            self.open_conversation(conversation_id)
        else:
            self._reload_view()
        self.view.scroll_to_bottom()

    @Slot()
    def stop(self) -> None:
        self.controller.stop()

    def _refusal(self, error: UserError) -> str:
        """Why a message cannot be sent. One that fits only with a shorter reply is told in
        the window's own words (and language): which setting to lower, and how far."""
        if isinstance(error, ContextOverflowError) and error.reply_room is not None:
            return arg(self.tr("This message fits the context only with a shorter reply: lower "
                               "Max new tokens to %1 or less in Settings, or shorten the "
                               "message."), f"{error.reply_room:,}")
        return str(error)

    @Slot(str)
    def _on_regenerate_requested(self, reply_id: str) -> None:
        if self.controller.generating or self.controller.engine is None:
            return
        try:
            self.controller.regenerate(reply_id)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)

    @Slot(str, str)
    def _on_edit_submitted(self, message_id: str, text: str) -> None:
        if self.controller.generating or self.controller.engine is None:
            return
        try:
            self.controller.edit_and_resend(message_id, text)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
            return
        self._reload_view()
        self.view.scroll_to_bottom()

    @Slot(str)
    def _on_delete_message_requested(self, message_id: str) -> None:
        if self.controller.generating:
            return
        answer = QMessageBox.question(
            self, self.tr("Delete message"),
            self.tr("Delete this message and everything after it in this branch?"),
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.store.delete_message(message_id)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
        self._reload_view()

    @Slot(str)
    def _on_branch_requested(self, message_id: str) -> None:
        if self.controller.generating:
            return
        try:
            self.store.select_branch(message_id)
        except UserError as exc:
            self.banner.show_message(str(exc), error=True)
        self._reload_view()

    @Slot(bool)
    def _on_generating_changed(self, generating: bool) -> None:
        self.composer.set_generating(generating)
        self.view.set_busy(generating)
        self.sidebar.set_busy_conversation(self.controller.generating_conversation)
        self.model_bar.set_switching_enabled(not generating)
        self.stop_action.setEnabled(generating)

    @Slot(object)
    def _on_reply_started(self, start: ReplyStart) -> None:
        dropped = len(start.dropped)
        self.status.set_notice(
            self.tr("Left out %n older message(s) that did not fit the context", "", dropped)
            if dropped else "")
        self.status.set_context(start.prompt_tokens + start.reserve, start.context_length)
        if start.conversation_id == self.current_id:
            self._reload_view()

    @Slot(str, str, str)
    def _on_reply_progress(self, conversation_id: str, message_id: str, text: str) -> None:
        if conversation_id == self.current_id:
            self.view.update_streaming(message_id, text)

    @Slot(object)
    def _on_reply_ended(self, end: ReplyEnd) -> None:
        if end.stats is not None:
            self.status.set_reply_figures(end.stats.decode_tokens_per_s or None,
                                          end.stats.time_to_first_token_s)
        if end.outcome == "failed":
            self.banner.show_message(arg(self.tr("The reply failed: %1"), end.error or ""),
                                     error=True)
        if end.conversation_id == self.current_id:
            try:
                self._conversation = self.store.get_conversation(end.conversation_id)
            except UserError as exc:
                self.banner.show_message(str(exc), error=True)
            self._reload_view()
        self.refresh_conversations()

    # --- context meter ------------------------------------------------------------------

    def _schedule_context(self) -> None:
        self._context_timer.start()

    @Slot()
    def _on_draft_edited(self) -> None:
        self._schedule_context()

    @Slot()
    def _on_context_due(self) -> None:
        """Ask for the meter's figures; they come back to :meth:`_on_plan_ready`."""
        if self.controller.generating:
            return
        if not self.controller.request_plan(self.view.messages, self.composer.text,
                                            self._settings()):
            self.status.set_context(0, 0)

    @Slot(object)
    def _on_plan_ready(self, result: PlanResult) -> None:
        engine = self.controller.engine
        if self.controller.generating or engine is None:
            return
        if isinstance(result.error, ContextOverflowError):
            total = engine.model.context_length
            self.status.set_context(total, total, overflow=True)
            self.status.set_notice(self._refusal(result.error))
            return
        if result.error is not None:
            self.status.set_notice(str(result.error))
            return
        plan = result.plan
        assert plan is not None
        self.status.set_context(plan.used, plan.context_length)
        dropped = len(plan.dropped)
        self.status.set_notice(
            self.tr("%n older message(s) will be left out to fit the context", "", dropped)
            if dropped else "")

    # --- models -------------------------------------------------------------------------

    def _load_model(self, folder: Path, device: str | None = None) -> None:
        """Load ``folder`` on ``device`` (default: the preferred one) with the preferred KV
        cache."""
        self.controller.load_model(folder, device or self.prefs.device, self.prefs.kv_cache)

    def _int8_cache_not_used(self, model: Model) -> str | None:
        """Why ``model`` keeps the fp32 cache although the int8 cache is preferred."""
        if self.prefs.kv_cache != "int8" or model.kv_cache == "int8":
            return None
        graph, missing = model.manifest.int8_cache
        if graph is None:
            return arg(self.tr("The int8 KV cache is not used for %1: %2."), model.name, missing)
        return arg(self.tr("The int8 KV cache is not used for %1: it runs on the CPU, and the "
                           "device chosen is CUDA."), model.name)

    @Slot(str)
    def _on_model_chosen(self, folder: str) -> None:
        self._load_model(Path(folder))

    @Slot(str)
    def _on_device_chosen(self, device: str) -> None:
        self._reload_model(device)

    def _reload_model(self, device: str | None = None) -> None:
        """Load the model in use (or being loaded) again, on ``device`` and with the
        preferred KV cache."""
        folder = self.controller.model_folder or (
            self.controller.loading.folder if self.controller.loading else None)
        if folder is not None:
            self._load_model(folder, device)

    @Slot(str)
    def _on_model_load_started(self, name: str) -> None:
        self.model_bar.set_loading(name)
        self._update_page()

    @Slot(object)
    def _on_model_loaded(self, engine: ChatEngine) -> None:
        model = engine.model
        self.model_bar.set_loading(None)
        self.model_bar.select(str(model.manifest.folder))
        self.model_bar.set_device(model.device.requested)
        self.status.set_model(model.name)
        self.status.set_device(model.device)
        self.view.set_model_name(model.name)
        self.prefs.model = str(model.manifest.folder)
        self.prefs.device = model.device.requested
        not_used = self._int8_cache_not_used(model)
        if not_used:
            self.banner.show_message(not_used)
        if self.server.state in (STARTING, ON) and (
                self.server.folder != model.manifest.folder
                or self.server.kv_cache != model.kv_cache):
            self._serve(engine)  # the server follows the window's model and its KV cache
        self._update_page()
        self._schedule_context()

    # --- local server -------------------------------------------------------------------

    @Slot(bool)
    def _on_server_action_toggled(self, on: bool) -> None:
        """The Model menu's "Local server" switch."""
        if not on:
            self.server.stop()
            return
        engine = self.controller.engine
        if engine is None:
            self.banner.show_message(self.tr("Load a model before starting the local server."),
                                     error=True)
            self._on_server_state_changed(self.server.state)
            return
        self._serve(engine)

    def _serve(self, engine: ChatEngine) -> None:
        """Serve the window's model, on its device, with the saved port and history choice."""
        model = engine.model
        self.server.start(model.manifest.folder, model.device.requested, self.prefs.server_port,
                          self.prefs.server_history, model.kv_cache)

    @Slot(bool)
    def _on_server_history_toggled(self, checked: bool) -> None:
        self.prefs.server_history = checked
        engine = self.controller.engine
        if self.server.state in (STARTING, ON) and engine is not None:
            self._serve(engine)  # restart with the new choice

    @Slot(str)
    def _on_server_state_changed(self, state: str) -> None:
        self.server_status.show_state(state, self.server.url, self.server.model)
        self.server_action.blockSignals(True)
        self.server_action.setChecked(state in (STARTING, ON))
        self.server_action.blockSignals(False)

    @Slot(dict)
    def _on_server_counts_changed(self, counts: dict[str, int]) -> None:
        self.server_status.show_counts(counts)

    @Slot(str)
    def _on_server_failed(self, message: str) -> None:
        self.banner.show_message(arg(self.tr("The local server stopped: %1"), message),
                                 error=True)

    @Slot(str)
    def _on_model_load_failed(self, message: str) -> None:
        self.model_bar.set_loading(None)
        folder = self.controller.model_folder
        self.model_bar.select(str(folder) if folder else None)
        engine = self.controller.engine
        if engine is not None:
            self.model_bar.set_device(engine.model.device.requested)
        self.banner.show_message(arg(self.tr("The model could not be loaded: %1"), message),
                                 error=True)
        self._update_page()

    @Slot()
    def _on_prepare_requested(self) -> None:
        self.open_export_dialog()

    @Slot()
    def open_export_dialog(self) -> None:
        self._run_export_dialog(None)

    def _run_export_dialog(self, dropped: list[QUrl] | None) -> None:
        """The export dialog, with ``dropped`` as its source when a drop opened it."""
        dialog = ExportDialog(self, preselect_default=True)
        dialog.modelExported.connect(self._on_model_exported)
        if dropped is not None and dialog.available:
            dialog.apply_drop(dropped)
        accepted = dialog.exec() == ExportDialog.DialogCode.Accepted
        if accepted and dialog.exported:
            self._load_model(Path(dialog.exported))
        dialog.deleteLater()

    @Slot(str)
    def _on_model_exported(self, folder: str) -> None:
        self.refresh_models()
        if self.controller.engine is None and self.controller.loading is None:
            self._load_model(Path(folder))

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if has_files(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        """Open the export dialog with the drop once the drop is over (a modal dialog must
        not run inside the drop's own event)."""
        urls = list(event.mimeData().urls())
        event.acceptProposedAction()
        QTimer.singleShot(0, self, lambda: self._run_export_dialog(urls))

    @Slot()
    def open_models_dialog(self) -> None:
        dialog = ModelsDialog(self._models_in_use, self)
        dialog.modelDeleted.connect(self._on_model_deleted)
        dialog.exec()
        dialog.deleteLater()

    def _models_in_use(self) -> list[Path]:
        """The folders a deletion must leave alone: the loaded model, the one loading, and
        the one the local server runs."""
        loading = self.controller.loading
        folders = [self.controller.model_folder, loading.folder if loading else None,
                   self.server.folder if self.server.state in (STARTING, ON) else None]
        return [Path(folder) for folder in folders if folder is not None]

    @Slot(str)
    def _on_model_deleted(self, _folder: str) -> None:
        self.refresh_models()

    # --- settings -----------------------------------------------------------------------

    @Slot()
    def open_settings(self) -> None:
        engine = self.controller.engine
        dialog = SettingsDialog(self._settings(), self.controller.model_defaults(),
                                engine.model.name if engine else "", self._language_pref,
                                self._theme_pref, self, kv_cache=self.prefs.kv_cache)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            dialog.deleteLater()
            return
        chat = dialog.chat_settings()
        language, theme, kv_cache = dialog.language, dialog.theme, dialog.kv_cache
        dialog.deleteLater()
        self.apply_chat_settings(chat)
        if kv_cache != self.prefs.kv_cache:
            self.prefs.kv_cache = kv_cache
            self._reload_model()
        if theme != self._theme_pref:
            self._theme_pref = theme
            self.themeChosen.emit(theme)
        if language != self._language_pref:
            self._language_pref = language
            self.languageChosen.emit(language)

    def apply_chat_settings(self, chat: ChatSettings) -> None:
        """Use ``chat`` for the conversation on screen (stored with it), or for the new chat
        until its first message stores it."""
        if self._conversation is not None:
            try:
                self._conversation = self.store.update_conversation(
                    self._conversation.id, system_prompt=chat.system_prompt,
                    sampling=dict(chat.overrides))
            except UserError as exc:
                self.banner.show_message(str(exc), error=True)
        else:
            self._draft = chat
        self._schedule_context()

    def chat_settings(self) -> ChatSettings:
        """The settings of the conversation on screen (or of the new chat)."""
        return self._settings()

    # --- chat files ---------------------------------------------------------------------

    @Slot()
    def _on_export_markdown_triggered(self) -> None:
        if self._conversation is None:
            self.banner.show_message(self.tr("Open a chat to export it."), timeout_ms=4000)
            return
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export chat"),
                                              f"{self._conversation.title}.md",
                                              self.tr("Markdown (*.md)"))
        if path:
            self._write_file(Path(path),
                             self.store.export_markdown([self._conversation.id]).encode("utf-8"))

    @Slot()
    def _on_export_json_triggered(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export all chats"),
                                              "onnxchat-history.json", self.tr("JSON (*.json)"))
        if path:
            self._write_file(Path(path), self.store.export_json())

    def _write_file(self, path: Path, data: bytes) -> None:
        try:
            path.write_bytes(data)
        except OSError as exc:
            self.banner.show_message(arg(self.tr("Could not write %1: %2"), path,
                                         exc.strerror or exc), error=True)
        else:
            self.banner.show_message(arg(self.tr("Saved %1."), path), timeout_ms=4000)

    @Slot()
    def _on_import_json_triggered(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Import chats"), "",
                                              self.tr("JSON (*.json)"))
        if not path:
            return
        try:
            report = self.store.import_json(Path(path).read_bytes())
        except (UserError, OSError) as exc:
            self.banner.show_message(str(exc), error=True)
            return
        self.refresh_conversations()
        text = self.tr("Imported %n chat(s).", "", len(report.imported))
        if report.skipped:
            text += " " + self.tr("Skipped %n already here.", "", len(report.skipped))
        self.banner.show_message(text, timeout_ms=6000)

    @Slot()
    def _on_about_triggered(self) -> None:
        from desktop import __version__

        QMessageBox.about(self, self.tr("About OnnxChat"),
                          arg(self.tr("OnnxChat %1 — offline chat with local language models "
                                      "on ONNX Runtime."), __version__))

    # --- closing ------------------------------------------------------------------------

    def replace(self) -> None:
        """Close this window for a rebuilt one (language or theme change): the controller
        and its reply in progress carry on."""
        self._replaced = True
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.prefs.geometry = self.saveGeometry()
        self.prefs.splitter = self.splitter.saveState()
        self.prefs.last_conversation = self.current_id or ""
        self.prefs.sync()
        self._context_timer.stop()
        super().closeEvent(event)
        if not self._replaced:
            self.closed.emit()

