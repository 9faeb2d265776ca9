"""Running an exported decoder the simplest way, for tests that compare graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort


def session(model: onnx.ModelProto | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def greedy(sess: ort.InferenceSession, prompt: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """``n`` greedy tokens after ``prompt`` and the logits that chose them, for either layout,
    with growing caches (positions fed where the graph takes them)."""
    names = [o.name for o in sess.get_outputs()]
    inputs = {i.name: i for i in sess.get_inputs()}
    past = {
        name: np.zeros([1, meta.shape[1], 0, meta.shape[3]], np.float32)
        for name, meta in inputs.items() if name.startswith("past_key_values.")
    }
    ids, total, tokens, logits = prompt, 0, [], []
    for _ in range(n):
        start, total = total, total + len(ids)
        feeds = {"input_ids": np.array([ids], np.int64),
                 "attention_mask": np.ones((1, total), np.int64), **past}
        if "position_ids" in inputs:
            feeds["position_ids"] = np.arange(start, total, dtype=np.int64)[None]
        out = dict(zip(names, sess.run(None, feeds), strict=True))
        past = {k.replace("present.", "past_key_values."): v for k, v in out.items()
                if k.startswith("present.")}
        logits.append(out["logits"][0, -1])
        tokens.append(int(logits[-1].argmax()))
        ids = [tokens[-1]]
    return tokens, np.stack(logits)
