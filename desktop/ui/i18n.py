"""Which language the window speaks, and installing its Qt translators.

Every visible string goes through Qt's translation system; the compiled catalogues
(``desktop/ui/i18n/onnxchat_<lang>.qm``, built by :mod:`desktop.ui.i18n_build`) are loaded
here together with Qt's own (``qtbase_<lang>.qm``: standard buttons, dialogs, context menus).
"""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QLibraryInfo, QLocale, QTranslator

I18N_DIR = Path(__file__).resolve().parent / "i18n"
# Language code -> its name in that language (shown as is in every UI language).
LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
CATALOGUE = "onnxchat"


def system_language() -> str:
    """The best supported language for the system locale (Chinese locales get zh_CN)."""
    return "zh_CN" if QLocale.system().name().startswith("zh") else "en"


def resolve(preference: str) -> str:
    """A language code for a preference: "system" or one of :data:`LANGUAGES`."""
    return preference if preference in LANGUAGES else system_language()


class Translations:
    """The translators installed in the application; :meth:`use` swaps them."""

    def __init__(self) -> None:
        self._installed: list[QTranslator] = []

    def use(self, language: str) -> bool:
        """Install the catalogues for ``language``; False if the app's own one is missing
        (the window then shows the English source text)."""
        self.clear()
        app = QCoreApplication.instance()
        found = False
        qt_dir = QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)
        for name, folder in ((f"{CATALOGUE}_{language}", I18N_DIR), (f"qtbase_{language}", qt_dir)):
            translator = QTranslator(app)
            if translator.load(name, str(folder)):
                app.installTranslator(translator)
                self._installed.append(translator)
                found = found or name.startswith(CATALOGUE)
        if language != "en":
            QLocale.setDefault(QLocale(language))
        else:
            QLocale.setDefault(QLocale(QLocale.Language.English, QLocale.Country.UnitedStates))
        return found

    def clear(self) -> None:
        """Remove this object's translators (the application object may outlive it)."""
        app = QCoreApplication.instance()
        for translator in self._installed:
            app.removeTranslator(translator)
            translator.deleteLater()
        self._installed = []


def arg(template: str, *values: object) -> str:
    """Fill ``%1``, ``%2``, … in a translated string (Qt's QString::arg, which Python lacks).

    One pass, so a value that itself contains ``%1`` is inserted as it is.
    """

    def value(match: re.Match[str]) -> str:
        number = int(match.group(1))
        return str(values[number - 1]) if 1 <= number <= len(values) else match.group(0)

    return re.sub(r"%(\d+)", value, template)
