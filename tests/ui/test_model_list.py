"""The model list: family, parameters, recipe and disk use of real exported folders, the same
columns as ``onnxchat models``; deleting a model after a confirmation, never the one in use,
and never leaving half a model behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

import desktop.paths
from desktop.engine import list_models
from desktop.model_folders import (
    DELETING_PREFIX,
    DeleteRefused,
    DiskUse,
    delete_model,
    disk_use,
    model_facts,
    size_text,
)
from desktop.ui.models_dialog import DISK, FAMILY, NAME, PARAMETERS, RECIPE, ModelsDialog


@pytest.fixture
def two_models(tiny_llama_model: Path, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """``first``: a copy of the exported tiny Llama; ``second``: the same files hard-linked
    (as a copy made with ``cp -al`` is), so they take the disk only once. Each is named as
    ``--name`` would name it (the manifest is not among the files it hashes)."""
    models = tmp_path / "models"
    first, second = models / "first", models / "second"
    shutil.copytree(tiny_llama_model, first)
    manifest = json.loads((first / "manifest.json").read_text(encoding="utf-8"))
    shutil.copytree(first, second, copy_function=os.link,
                    ignore=shutil.ignore_patterns("manifest.json"))
    for folder in (first, second):
        (folder / "manifest.json").write_text(json.dumps({**manifest, "name": folder.name}),
                                              encoding="utf-8")
    monkeypatch.setenv("ONNXCHAT_MODELS_DIR", str(models))
    monkeypatch.setattr(desktop.paths, "checkout_root", lambda: None)
    return first, second


def rows(dialog: ModelsDialog) -> list[list[str]]:
    table = dialog.table
    return [[table.topLevelItem(i).text(c) for c in range(table.columnCount())]
            for i in range(table.topLevelItemCount())]


def select(dialog: ModelsDialog, folder: Path) -> None:
    table = dialog.table
    for index in range(table.topLevelItemCount()):
        if table.topLevelItem(index).data(NAME, Qt.ItemDataRole.UserRole) == str(folder):
            table.setCurrentItem(table.topLevelItem(index))
            return
    raise AssertionError(f"{folder} is not listed")


def test_the_list_shows_family_size_recipe_and_disk_use_like_the_cli(qtbot, two_models):
    first, _ = two_models
    files = sum(f.stat().st_size for f in first.rglob("*") if f.is_file())
    dialog = ModelsDialog(lambda: [first])
    qtbot.addWidget(dialog)
    listed = rows(dialog)
    assert [row[NAME] for row in listed] == ["first (in use)", "second"]
    for row in listed:
        assert (row[FAMILY], row[PARAMETERS], row[RECIPE]) == ("Llama", "100K", "fp32")
        assert row[DISK] == size_text(files)  # each folder's own files, counted once
    cli = subprocess.run([sys.executable, "-m", "desktop", "models", "--json"],
                         capture_output=True, text=True, check=True, env=os.environ)
    listed_by_cli = [e for e in json.loads(cli.stdout) if Path(e["path"]).parent == first.parent]
    assert [e["name"] for e in listed_by_cli] == ["first", "second"]
    for entry in listed_by_cli:
        assert (entry["family"], entry["parameters_text"], entry["recipe"],
                size_text(entry["disk_bytes"])) == ("Llama", "100K", "fp32", size_text(files))


def test_the_model_in_use_is_not_deleted(qtbot, two_models):
    first, _ = two_models
    dialog = ModelsDialog(lambda: [first])
    qtbot.addWidget(dialog)
    select(dialog, first)
    assert not dialog.delete_button.isEnabled()
    assert dialog.status_label.text() == ("first is in use: choose another model first, then "
                                          "delete it.")
    with pytest.raises(DeleteRefused, match="first is in use"):
        delete_model(first, [first])
    assert not dialog.delete(first)
    assert (first / "manifest.json").is_file()
    assert dialog.status_label.text().startswith("first is in use")


def test_delete_asks_with_the_size_freed_and_removes_the_whole_folder(qtbot, two_models,
                                                                     on_modal):
    first, second = two_models
    models = first.parent
    leftover = models / f"{DELETING_PREFIX}old-1234"  # a deletion a crash cut short
    shutil.copytree(first, leftover, copy_function=os.link)
    assert [m.name for m in list_models()] == ["first", "second"]
    dialog = ModelsDialog(lambda: [first])
    qtbot.addWidget(dialog)
    select(dialog, second)
    assert dialog.delete_button.isEnabled()
    asked: dict[str, str] = {}

    def confirm(box: QMessageBox) -> None:
        asked["text"] = box.text()
        next(b for b in box.buttons()
             if box.buttonRole(b) == QMessageBox.ButtonRole.DestructiveRole).click()

    on_modal(QMessageBox, confirm)
    own = (second / "manifest.json").stat().st_size
    with qtbot.waitSignal(dialog.modelDeleted, timeout=30_000) as deleted:
        dialog.delete_button.click()
    # Every other file of "second" is also a file of "first": only its manifest is freed.
    assert asked["text"] == f"Delete second? This frees {size_text(own)} on the disk."
    assert deleted.args == [str(second)]
    assert sorted(p.name for p in models.iterdir()) == ["first"]
    assert [row[NAME] for row in rows(dialog)] == ["first (in use)"]
    assert dialog.status_label.text() == "Deleted second."
    files = sum(f.stat().st_size for f in first.rglob("*") if f.is_file())
    assert disk_use(first) == DiskUse(total=files, freed=files)  # now its files alone


def test_the_default_model_reads_as_people_name_it(default_model):
    (entry,) = [m for m in list_models([default_model.parent]) if m.path == default_model]
    facts = model_facts(entry)
    assert (facts.family, facts.parameters_text) == ("Llama", "135M")  # SmolLM2-135M
    assert facts.disk.total == entry.manifest.size_bytes + (default_model / "manifest.json"
                                                            ).stat().st_size
