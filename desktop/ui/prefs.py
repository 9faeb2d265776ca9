"""Window preferences kept between runs, in ``<data dir>/window.ini``.

Kept beside the chat store rather than in the platform's settings location so that a data
folder is self-contained: tests with a temporary data folder never touch the user's settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from desktop.engine.settings import KV_CACHES

SETTINGS_FILE = "window.ini"


class Preferences:
    """Typed access to the window's settings file."""

    def __init__(self, data_dir: Path) -> None:
        self._settings = QSettings(str(Path(data_dir) / SETTINGS_FILE), QSettings.Format.IniFormat)

    def _text(self, key: str, default: str) -> str:
        value = self._settings.value(key, default)
        return value if isinstance(value, str) else default

    def _bytes(self, key: str) -> QByteArray | None:
        value = self._settings.value(key)
        return value if isinstance(value, QByteArray) else None

    @property
    def language(self) -> str:
        """"system", "en" or "zh_CN"."""
        return self._text("ui/language", "system")

    @language.setter
    def language(self, value: str) -> None:
        self._settings.setValue("ui/language", value)

    @property
    def theme(self) -> str:
        """"system", "light" or "dark"."""
        return self._text("ui/theme", "system")

    @theme.setter
    def theme(self, value: str) -> None:
        self._settings.setValue("ui/theme", value)

    @property
    def device(self) -> str:
        return self._text("model/device", "auto")

    @device.setter
    def device(self, value: str) -> None:
        self._settings.setValue("model/device", value)

    @property
    def kv_cache(self) -> str:
        """"fp32", or "int8": the CPU graph with an int8 KV cache where a model has one."""
        value = self._text("model/kv_cache", "fp32")
        return value if value in KV_CACHES else "fp32"

    @kv_cache.setter
    def kv_cache(self, value: str) -> None:
        self._settings.setValue("model/kv_cache", value)

    @property
    def model(self) -> str:
        """The folder of the model used last ("" if none)."""
        return self._text("model/folder", "")

    @model.setter
    def model(self, value: str) -> None:
        self._settings.setValue("model/folder", value)

    @property
    def server_port(self) -> int:
        """The port of the window's local server (0: any free port)."""
        value = self._settings.value("server/port", 8080)
        try:
            port = int(value)
        except (TypeError, ValueError):
            return 8080
        return port if 0 <= port <= 65535 else 8080

    @server_port.setter
    def server_port(self, value: int) -> None:
        self._settings.setValue("server/port", int(value))

    @property
    def server_history(self) -> bool:
        """Whether the local server saves its requests to the chat history."""
        return self._text("server/history", "false") == "true"

    @server_history.setter
    def server_history(self, value: bool) -> None:
        self._settings.setValue("server/history", "true" if value else "false")

    @property
    def last_conversation(self) -> str:
        return self._text("chat/last_conversation", "")

    @last_conversation.setter
    def last_conversation(self, value: str) -> None:
        self._settings.setValue("chat/last_conversation", value)

    @property
    def geometry(self) -> QByteArray | None:
        return self._bytes("window/geometry")

    @geometry.setter
    def geometry(self, value: QByteArray) -> None:
        self._settings.setValue("window/geometry", value)

    @property
    def splitter(self) -> QByteArray | None:
        return self._bytes("window/splitter")

    @splitter.setter
    def splitter(self, value: QByteArray) -> None:
        self._settings.setValue("window/splitter", value)

    def sync(self) -> None:
        self._settings.sync()
