"""Sessions flush subnormal floats to zero: arithmetic on them is ~100 times slower on x86,
and softmax over widely spread attention scores produces them (models/README.md "CPU decode
speed"). A product of two small numbers shows whether the threads running the graph flush."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from desktop.engine.runtime import create_session


def product_model() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Mul", ["a", "b"], ["c"])], "product",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [4096]) for name in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [4096])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_subnormal_results_flush_to_zero():
    session, _ = create_session(product_model(), device="cpu", threads=2)
    assert session.get_session_options().get_session_config_entry(
        "session.set_denormal_as_zero") == "1"
    a = np.full(4096, 1e-30, np.float32)
    b = np.full(4096, 1e-10, np.float32)
    (c,) = session.run(None, {"a": a, "b": b})
    assert not c.any(), "1e-30 x 1e-10 should flush to 0, not stay a subnormal ~1e-40"
    (normal,) = session.run(None, {"a": a, "b": np.full(4096, 1e5, np.float32)})
    np.testing.assert_allclose(normal, 1e-25, rtol=1e-6)
