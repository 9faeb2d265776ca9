"""Light and dark looks, following the system unless the user forces one, and fonts.

The Fusion style with our own palettes looks the same on every platform and lets the dark
theme be forced even where the platform has no dark mode (or, offscreen, no platform theme).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QFontInfo, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

MONO_FAMILIES = ("DejaVu Sans Mono", "Noto Sans Mono", "Liberation Mono", "Cascadia Mono",
                 "Consolas", "Menlo", "SF Mono", "Courier New")
# Families with good Simplified Chinese glyphs, best first.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
                "WenQuanYi Zen Hei", "Microsoft YaHei", "PingFang SC")


@dataclass(frozen=True)
class Colors:
    """The colours the window's own widgets use; ``pygments_style`` colours code."""

    scheme: str
    window: str
    sidebar: str
    base: str
    text: str
    muted: str
    border: str
    accent: str
    accent_text: str
    user_bubble: str
    user_text: str
    assistant_bubble: str
    code_bg: str
    code_header: str
    link: str
    danger: str
    warning: str
    pygments_style: str


LIGHT = Colors("light", window="#f7f7f8", sidebar="#eeeff2", base="#ffffff", text="#1f2328",
               muted="#6b7280", border="#d8dbe0", accent="#2f6fde", accent_text="#ffffff",
               user_bubble="#dbe8fd", user_text="#10223f", assistant_bubble="#ffffff",
               code_bg="#f6f8fa", code_header="#eaeef2", link="#1f5fc8", danger="#c0392b",
               warning="#9a6700", pygments_style="default")
DARK = Colors("dark", window="#1e1f22", sidebar="#17181a", base="#2b2d31", text="#e6e6e6",
              muted="#9ca3af", border="#3a3d42", accent="#4c8dff", accent_text="#ffffff",
              user_bubble="#2d4470", user_text="#eef3ff", assistant_bubble="#26282c",
              code_bg="#16171a", code_header="#202226", link="#8ab4ff", danger="#ff6b5e",
              warning="#e3b341", pygments_style="monokai")


def system_scheme() -> str:
    """"dark" when the platform says so (Qt 6.5+), else "light"."""
    scheme = QGuiApplication.styleHints().colorScheme()
    return "dark" if scheme == Qt.ColorScheme.Dark else "light"


def resolve(preference: str) -> Colors:
    """The colours for a preference: "system", "light" or "dark"."""
    scheme = preference if preference in ("light", "dark") else system_scheme()
    return DARK if scheme == "dark" else LIGHT


def palette_for(colors: Colors) -> QPalette:
    palette = QPalette()
    role, group = QPalette.ColorRole, QPalette.ColorGroup
    values = {
        role.Window: colors.window, role.WindowText: colors.text, role.Base: colors.base,
        role.AlternateBase: colors.sidebar, role.Text: colors.text, role.Button: colors.base,
        role.ButtonText: colors.text, role.Highlight: colors.accent,
        role.HighlightedText: colors.accent_text, role.ToolTipBase: colors.base,
        role.ToolTipText: colors.text, role.PlaceholderText: colors.muted, role.Link: colors.link,
        role.BrightText: colors.danger, role.Mid: colors.border, role.Midlight: colors.border,
        role.Dark: colors.border, role.Light: colors.base, role.Shadow: "#000000",
    }
    for r, value in values.items():
        palette.setColor(r, QColor(value))
    disabled = QColor(colors.muted)
    for r in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(group.Disabled, r, disabled)
    return palette


def stylesheet(c: Colors) -> str:
    """Rules for the window's named widgets (object names set where they are built)."""
    return f"""
    #sidebar {{ background: {c.sidebar}; }}
    #sidebar QListWidget {{ background: {c.sidebar}; border: none; }}
    #sidebar QListWidget::item {{ padding: 7px 8px; border-radius: 6px; }}
    #sidebar QListWidget::item:selected {{ background: {c.border}; color: {c.text}; }}
    #chatScroll, #chatContainer {{ background: {c.window}; border: none; }}
    #userBubble {{ background: {c.user_bubble}; border-radius: 14px; }}
    #userBubble QTextBrowser {{ color: {c.user_text}; }}
    #assistantBubble {{ background: {c.assistant_bubble}; border: 1px solid {c.border};
                        border-radius: 14px; }}
    #userBubble QTextBrowser, #assistantBubble QTextBrowser, #editBox {{
        background: transparent; border: none; }}
    #codeBlock {{ background: {c.code_bg}; border: 1px solid {c.border}; border-radius: 8px; }}
    #codeHeader {{ background: {c.code_header}; border-top-left-radius: 8px;
                   border-top-right-radius: 8px; }}
    #codeBlock QTextBrowser {{ background: {c.code_bg}; border: none; }}
    #roleLabel {{ color: {c.muted}; font-weight: 600; }}
    #metaLabel, #hintLabel, #rangeLabel {{ color: {c.muted}; }}
    #errorLabel, #fieldError {{ color: {c.danger}; }}
    #noticeLabel {{ color: {c.warning}; }}
    #messageActions QToolButton, #codeHeader QToolButton {{
        color: {c.muted}; border: none; padding: 2px 6px; border-radius: 4px; }}
    #messageActions QToolButton:hover, #codeHeader QToolButton:hover {{
        background: {c.border}; color: {c.text}; }}
    #composer {{ background: {c.base}; border: 1px solid {c.border}; border-radius: 14px; }}
    #composer QPlainTextEdit {{ background: transparent; border: none; }}
    #composer QScrollBar:vertical {{ background: transparent; width: 10px; margin: 2px; }}
    #composer QScrollBar::handle:vertical {{ background: {c.border}; border-radius: 3px;
                                             min-height: 24px; }}
    #composer QScrollBar::add-line, #composer QScrollBar::sub-line {{ height: 0; }}
    #composer QScrollBar::add-page, #composer QScrollBar::sub-page {{ background: none; }}
    #contextMeter[overflow="true"] {{ color: #ffffff; text-align: center; font-weight: 600;
                                     border: none; background: {c.border}; }}
    #contextMeter[overflow="true"]::chunk {{ background: {c.danger}; }}
    #sendButton {{ background: {c.accent}; color: {c.accent_text}; border: none;
                   border-radius: 8px; padding: 6px 16px; font-weight: 600; }}
    #sendButton:disabled {{ background: {c.border}; color: {c.muted}; }}
    #stopButton {{ background: {c.danger}; color: #ffffff; border: none; border-radius: 8px;
                   padding: 6px 16px; font-weight: 600; }}
    #banner {{ background: {c.code_header}; border-bottom: 1px solid {c.border}; }}
    #welcomeTitle {{ font-size: 22pt; font-weight: 600; }}
    #primaryButton {{ background: {c.accent}; color: {c.accent_text}; border: none;
                      border-radius: 8px; padding: 8px 18px; font-weight: 600; }}
    #primaryButton:disabled {{ background: {c.border}; color: {c.muted}; }}
    QLineEdit[invalid="true"] {{ border: 1px solid {c.danger}; }}
    """


def apply(app: QApplication, colors: Colors) -> None:
    """Use ``colors`` for every widget of ``app``."""
    app.setStyle("Fusion")
    app.setPalette(palette_for(colors))
    app.setStyleSheet(stylesheet(colors))


def cjk_family() -> str | None:
    """The first installed family from :data:`CJK_FAMILIES`, if any."""
    installed = set(QFontDatabase.families())
    return next((name for name in CJK_FAMILIES if name in installed), None)


def apply_fonts(app: QApplication) -> None:
    """Keep the system UI font and fall back to a readable CJK family for Chinese text.

    The system font is named by the family it resolves to: Qt does not resolve a generic name
    ("Sans Serif") inside a list of families, so ``["Sans Serif", CJK]`` set every character in
    the CJK family — English text with full-width curly quotes and the CJK font's Latin."""
    family = cjk_family()
    if family is None:
        return
    font = app.font()
    system = QFontInfo(font).family()
    installed = set(QFontDatabase.families())
    others = [name for name in font.families() if name in installed]
    font.setFamilies(list(dict.fromkeys([system, *others, family])))  # in order, each once
    app.setFont(font)


def monospace_families() -> list[str]:
    """Installed fixed-width families, best first, then a CJK family for Chinese comments."""
    installed = set(QFontDatabase.families())
    families = [name for name in MONO_FAMILIES if name in installed]
    system = QFontInfo(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)).family()
    if system not in families:
        families.append(system)
    family = cjk_family()
    if family and family not in families:
        families.append(family)
    return families


def monospace_font() -> QFont:
    font = QFont()
    font.setFamilies(monospace_families())
    font.setStyleHint(QFont.StyleHint.Monospace)
    font.setFixedPitch(True)
    return font
