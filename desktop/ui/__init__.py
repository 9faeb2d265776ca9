"""The desktop window (PySide6). ``onnxchat`` with no command opens it; see :mod:`.app`.

Layout
    :mod:`.app` (``main(args)``, :class:`~desktop.ui.app.Application`: store, controller,
    translators, theme; rebuilds the window on a language or theme change),
    :mod:`.controller` (user actions → engine jobs and store writes; throttled streaming),
    :mod:`.worker` (the engine thread), :mod:`.planner` (the context meter's thread),
    :mod:`.main_window` and its parts (:mod:`.sidebar`, :mod:`.chat_view`,
    :mod:`.message_widget`, :mod:`.markdown_view`, :mod:`.highlight`, :mod:`.long_text`,
    :mod:`.composer`, :mod:`.bars`, :mod:`.welcome`), dialogs (:mod:`.settings_dialog`,
    :mod:`.export_dialog`, :mod:`.full_text`), :mod:`.selftest` (``onnxchat --self-test``),
    :mod:`.screenshots` and :mod:`.i18n_build` (``python -m`` tools).

Threads
    One long-lived engine thread runs model loading and generation, one job at a time; a
    planner thread makes the context meter's plans. The UI thread asks for work with queued
    signals; tokens come back as queued signals and are shown at most every 50 ms. Every
    reply ends with exactly one of the worker's ``finished``, ``failed`` or ``cancelled``
    signals. Stop is a direct, thread-safe call into the worker (its event loop is busy while
    a reply streams). The worker writes the reply to the store as it grows; closing the
    window stops the reply, waits for the thread and keeps the text so far. Nothing that
    grows with a message's length runs in the UI thread: messages show a bounded preview,
    code is coloured in slices, and long text opens in a paged viewer.

Branches
    Editing a message and resending it, or regenerating a reply, never loses anything: the
    store keeps the earlier message or reply with everything after it as another branch of
    the conversation. The "‹ 1/2 ›" switch on such a message shows the other branches;
    Delete removes a message with everything after it on that branch.
"""
