"""The Optimum ONNX export of an fp32 Hugging Face folder."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from export.onnx_files import MODEL_FILE

TASK = "text-generation-with-past"
#: transformers' attention implementation for the reference model and the export (see
#: export_onnx)
REFERENCE_ATTENTION = "eager"
_OTHER_LOGGERS = ("torch.onnx", "onnxruntime")


@contextlib.contextmanager
def quiet_libraries(debug: bool) -> Iterator[None]:
    """Keep library chatter off stdout (which carries ``--progress-json``) and, unless
    debugging, hide the tracer warnings, info logs and progress bars a normal export prints
    by the page."""
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        if debug:
            yield
            return
        warnings.simplefilter("ignore")
        # transformers and optimum configure their root loggers on first use, so set their
        # levels through their own helpers (which configure first) rather than `logging`.
        from optimum.utils import logging as optimum_logging
        from transformers.utils import logging as hf_logging

        previous = (hf_logging.get_verbosity(), optimum_logging.get_verbosity())
        bars = hf_logging.is_progress_bar_enabled()
        levels = {name: logging.getLogger(name).level for name in _OTHER_LOGGERS}
        hf_logging.set_verbosity_error()
        optimum_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        for name in _OTHER_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            yield
        finally:
            hf_logging.set_verbosity(previous[0])
            optimum_logging.set_verbosity(previous[1])
            if bars:
                hf_logging.enable_progress_bar()
            for name, level in levels.items():
                logging.getLogger(name).setLevel(level)


def export_onnx(hf_dir: Path, out_dir: Path) -> Path:
    """Export ``hf_dir`` as a decoder with a KV cache; returns the ``model.onnx`` path.

    The model is traced with transformers' eager attention: the default SDPA path leaves out
    Gemma 2's attention soft-capping, so it is not the model as trained (greedy output of a
    Gemma 2 differs after the first token). Optimum's own PyTorch comparison is skipped: the
    validation gate compares the fp32 graph with PyTorch on real text instead.
    """
    from optimum.exporters.onnx import onnx_export_from_model
    from optimum.exporters.tasks import TasksManager

    model = TasksManager.get_model_from_task(
        TASK,
        str(hf_dir),
        local_files_only=True,
        framework="pt",
        library_name="transformers",
        attn_implementation=REFERENCE_ATTENTION,
    )
    model.config.use_cache = True
    onnx_export_from_model(model, output=str(out_dir), task=TASK, do_validation=False)
    return out_dir / MODEL_FILE
