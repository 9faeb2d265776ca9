"""Build the window's translations: ``python -m desktop.ui.i18n_build [--update | --check]``.

By default compiles every ``desktop/ui/i18n/*.ts`` into the ``.qm`` file the app loads (with
Qt's ``lrelease`` from the installed PySide6; the ``.qm`` files are build outputs and not
committed). ``--update`` first refreshes the ``.ts`` files from the source with ``lupdate``
and fills the English catalogue from the source text (plural forms from the ``(s)``
convention: "%n message(s)" → "1 message" / "2 messages"); translators then fill in the other
languages. ``--check`` changes nothing and fails when a string in the code is missing from a
catalogue or a translation is unfinished.

lupdate hands a ``#:`` comment to translators as a note on the next translated string, so the
window's modules comment their attributes with a plain ``#``; ``--check`` fails on any such
note (it would describe an attribute, not the string).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import PySide6

UI_DIR = Path(__file__).resolve().parent
I18N_DIR = UI_DIR / "i18n"
CATALOGUE = "onnxchat"
LANGUAGES = ("en", "zh_CN")
SOURCE_LANGUAGE = "en"


def ts_file(language: str) -> Path:
    return I18N_DIR / f"{CATALOGUE}_{language}.ts"


def sources() -> list[Path]:
    """The modules whose strings are translated: every module of the window."""
    return sorted(p for p in UI_DIR.glob("*.py") if p.name != "__init__.py")


def qt_tool(name: str) -> str:
    """Qt's ``name`` tool as shipped inside the PySide6 package (what ``pyside6-<name>``
    runs), so the build works without the wrapper scripts on PATH."""
    folder = Path(PySide6.__file__).resolve().parent
    for candidate in (folder / name, folder / f"{name}.exe"):
        if candidate.is_file():
            return str(candidate)
    wrapper = shutil.which(f"pyside6-{name}")
    if wrapper:
        return wrapper
    raise SystemExit(f"i18n_build: Qt's {name} is not in the installed PySide6 ({folder}); "
                     "reinstall PySide6-Essentials")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"i18n_build: {Path(command[0]).name} failed: "
                         f"{(result.stderr or result.stdout).strip()}")


def lupdate(ts: Path) -> None:
    """Add the code's strings to ``ts`` and drop those no longer in the code."""
    _run([qt_tool("lupdate"), "-silent", "-no-obsolete", "-locations", "none",
          "-target-language", ts.stem.removeprefix(f"{CATALOGUE}_"),
          *map(str, sources()), "-ts", str(ts)])


def lrelease(ts: Path) -> Path:
    qm = ts.with_suffix(".qm")
    _run([qt_tool("lrelease"), "-silent", str(ts), "-qm", str(qm)])
    return qm


def fill_source_language(ts: Path) -> None:
    """Give every message of the English catalogue its source text as translation."""
    tree = ET.parse(ts)
    for message in tree.iter("message"):
        source = message.findtext("source") or ""
        translation = message.find("translation")
        if translation is None:
            translation = ET.SubElement(message, "translation")
        if message.get("numerus") == "yes":
            forms = translation.findall("numerusform")
            if not forms:
                forms = [ET.SubElement(translation, "numerusform") for _ in range(2)]
            wanted = (source.replace("(s)", ""), source.replace("(s)", "s"))
            for form, text in zip(forms, wanted, strict=False):
                if not form.text:
                    form.text = text
        elif not translation.text:
            translation.text = source
        translation.attrib.pop("type", None)
    ET.indent(tree, space="    ")
    with ts.open("wb") as handle:
        handle.write(b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n')
        tree.write(handle, encoding="utf-8", xml_declaration=False)
        handle.write(b"\n")


def problems(ts: Path) -> list[str]:
    """Unfinished or empty translations in ``ts``, one line each."""
    found = []
    for context in ET.parse(ts).getroot().iter("context"):
        name = context.findtext("name")
        for message in context.iter("message"):
            source = message.findtext("source")
            translation = message.find("translation")
            texts = ([f.text for f in translation.findall("numerusform")]
                     if translation is not None and message.get("numerus") == "yes"
                     else [translation.text if translation is not None else None])
            unfinished = translation is None or translation.get("type") in ("unfinished",
                                                                             "vanished")
            if unfinished or not texts or not all(texts):
                found.append(f"{ts.name}: {name}: untranslated: {source!r}")
            if message.find("extracomment") is not None:
                found.append(f"{ts.name}: {name}: a `#:` comment in the code became a "
                             f"translator's note on {source!r}; write it with a plain `#`")
    return found


def messages(ts: Path) -> set[tuple[str, str]]:
    root = ET.parse(ts).getroot()
    return {(context.findtext("name") or "", message.findtext("source") or "")
            for context in root.iter("context") for message in context.iter("message")}


def check() -> list[str]:
    """Everything wrong with the committed catalogues, without changing them."""
    found = []
    with tempfile.TemporaryDirectory() as tmp:
        for language in LANGUAGES:
            ts = ts_file(language)
            if not ts.is_file():
                found.append(f"{ts} is missing; run python -m desktop.ui.i18n_build --update")
                continue
            fresh = Path(tmp) / ts.name
            shutil.copyfile(ts, fresh)
            lupdate(fresh)
            for context, source in sorted(messages(fresh) - messages(ts)):
                found.append(f"{ts.name}: {context}: not in the catalogue: {source!r}")
            for context, source in sorted(messages(ts) - messages(fresh)):
                found.append(f"{ts.name}: {context}: no longer in the code: {source!r}")
            found.extend(problems(ts))
    return found


def build() -> list[Path]:
    return [lrelease(ts_file(language)) for language in LANGUAGES if ts_file(language).is_file()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m desktop.ui.i18n_build",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true",
                      help="refresh the .ts catalogues from the source first (lupdate)")
    mode.add_argument("--check", action="store_true",
                      help="fail if a catalogue is out of date or unfinished; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        found = check()
        for line in found:
            print(line, file=sys.stderr)
        if found:
            print(f"i18n_build: {len(found)} problems; translate them and run with --update",
                  file=sys.stderr)
        return 1 if found else 0
    if args.update:
        I18N_DIR.mkdir(exist_ok=True)
        for language in LANGUAGES:
            lupdate(ts_file(language))
        fill_source_language(ts_file(SOURCE_LANGUAGE))
        lupdate(ts_file(SOURCE_LANGUAGE))  # back to lupdate's own layout: stable diffs
        for line in problems(ts_file("zh_CN")):
            print(line, file=sys.stderr)
    built = build()
    print(f"i18n_build: compiled {', '.join(p.name for p in built) or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
