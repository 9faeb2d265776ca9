"""The outcome of an export in a few lines: which recipe was kept and why, and the quality
gate's figures, read from the finished model folder's manifest.json (models/README.md), the
only thing the window and the export step share."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QLabel, QWidget

from desktop.engine.manifest import Manifest
from desktop.ui.i18n import arg


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


class ExportSummary(QWidget):
    """Recipe, why it was chosen, the gate's figures and the check against llama.cpp."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.recipe_label = self._field()
        self.choice_label = self._field()
        self.gate_label = self._field()
        self.source_label = self._field()
        form.addRow(self.tr("Recipe"), self.recipe_label)
        form.addRow(self.tr("Why"), self.choice_label)
        form.addRow(self.tr("Quality gate"), self.gate_label)
        self._source_title = QLabel("llama.cpp", self)  # a name, the same in every language
        form.addRow(self._source_title, self.source_label)

    def _field(self) -> QLabel:
        label = QLabel(self)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return label

    def show_manifest(self, manifest: Manifest) -> None:
        quantization = manifest.quantization
        description = str(quantization.get("description") or "")
        auto = quantization.get("auto")
        chosen = auto.get("chosen") if isinstance(auto, dict) else None
        recipe = str(chosen or manifest.recipe)
        self.recipe_label.setText(f"{recipe} — {description}" if description else recipe)
        self.choice_label.setText(self._choice(auto, quantization.get("note")))
        self.gate_label.setText(self._gate(manifest.validation))
        source = manifest.validation.get("source")
        self._source_title.setVisible(isinstance(source, dict))
        self.source_label.setVisible(isinstance(source, dict))
        if isinstance(source, dict):
            self.source_label.setText(self._source(source, manifest.validation))

    def _choice(self, auto: object, note: object) -> str:
        if not isinstance(auto, dict):
            text = self.tr("Asked for by name.")
        else:
            tried = [t for t in auto.get("tried", []) if isinstance(t, dict)]
            failed = [self._try(t) for t in tried if not t.get("passed")]
            if not failed:
                text = self.tr("auto: the fastest recipe for this model, and it passed the "
                               "quality gate.")
            else:
                text = arg(self.tr("auto: the fastest recipe that passed the quality gate, "
                                   "after %1."), "; ".join(failed))
        if isinstance(note, str) and note:
            text += " " + note
        return text

    def _try(self, tried: dict[str, Any]) -> str:
        recipe = str(tried.get("recipe", "?"))
        if "error" in tried:
            return arg(self.tr("%1 could not be built (%2)"), recipe, str(tried["error"]))
        ratio, top1 = _number(tried.get("perplexity_ratio")), _number(tried.get("top1_agreement"))
        if ratio is None or top1 is None:
            return arg(self.tr("%1 failed"), recipe)
        return arg(self.tr("%1 failed (perplexity ×%2, top-1 %3%)"), recipe, f"{ratio:.3f}",
                   f"{top1 * 100:.1f}")

    def _gate(self, validation: dict[str, Any]) -> str:
        ratio = _number(validation.get("perplexity_ratio"))
        top1 = _number(validation.get("top1_agreement"))
        if ratio is None or top1 is None:
            return self.tr("Not validated.")
        gate = validation.get("gate") if isinstance(validation.get("gate"), dict) else {}
        max_ratio = _number(gate.get("max_perplexity_ratio"))
        min_top1 = _number(gate.get("min_top1_agreement"))
        figures = arg(self.tr("perplexity ×%1 of fp32 (at most ×%2), top-1 agreement %3% "
                              "(at least %4%) over %5 tokens"),
                      f"{ratio:.3f}", f"{max_ratio:g}" if max_ratio else "?",
                      f"{top1 * 100:.1f}", f"{min_top1 * 100:g}" if min_top1 else "?",
                      validation.get("tokens", "?"))
        if validation.get("passed"):
            return arg(self.tr("Passed: %1."), figures)
        if validation.get("forced"):
            return arg(self.tr("Failed, kept because of --force: %1."), figures)
        return arg(self.tr("Failed: %1."), figures)

    def _source(self, source: dict[str, Any], validation: dict[str, Any]) -> str:
        if not source.get("ran"):
            return arg(self.tr("Not run: %1."), str(source.get("reason") or "?"))
        ours = _number(source.get("nll_per_byte"))
        theirs = _number(source.get("source_nll_per_byte"))
        ratio = _number(source.get("nll_ratio"))
        gate = validation.get("gate") if isinstance(validation.get("gate"), dict) else {}
        deviation = _number(gate.get("max_source_nll_deviation"))
        if ours is None or theirs is None:
            text = self.tr("Ran, without figures.")
        else:
            text = arg(self.tr("NLL per byte %1, llama.cpp %2 (ratio %3, within ±%4%)."),
                       f"{ours:.4f}", f"{theirs:.4f}", f"{ratio:.3f}" if ratio else "?",
                       f"{deviation * 100:g}" if deviation else "?")
        if source.get("tokenizer_matches"):
            return text + " " + self.tr("The same token ids as llama.cpp.")
        return text + " " + arg(self.tr("The token ids differ from llama.cpp's from token %1 "
                                        "on."), source.get("first_difference", "?"))
