"""Turn a language model into an OnnxChat model folder (see models/README.md).

The pipeline loads a Hugging Face folder, a GGUF file or the default model, exports it to
ONNX with Optimum, quantizes it with a named recipe, checks the quantized model against the
fp32 export on a fixed text, and only then moves the finished folder into place.
"""

from export.errors import ExportError
from export.pipeline import ExportResult, ExportSettings, export_model
from export.recipes import DEFAULT_RECIPE, RECIPES
from export.validation import ValidationGate

__all__ = [
    "DEFAULT_RECIPE",
    "RECIPES",
    "ExportError",
    "ExportResult",
    "ExportSettings",
    "ValidationGate",
    "export_model",
]
