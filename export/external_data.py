"""Writing a graph's weights straight into its ONNX external data file, tensor by tensor.

A model over protobuf's 2 GB limit must keep its weights outside ``model.onnx`` anyway, and
building the whole ``ModelProto`` in memory first (then letting ``onnx.save_model`` copy every
tensor once more) costs two to three times the model's size in RAM. Here each large tensor is
written to ``model.onnx_data`` the moment the graph builder makes it, and the graph holds only
a reference (location, offset, length): the builder never keeps more than the tensor at hand.

Offsets are aligned to 64 KiB, the largest boundary ONNX's external data format allows and
the allocation granularity of Windows (a multiple of every page size), so ONNX Runtime can
memory-map each tensor in place instead of reading it into its own buffers. Small tensors
(norms, shape constants) stay inside the graph: ONNX Runtime's shape inference reads shape
constants only from the graph itself, and padding them to 64 KiB would waste more than they
weigh.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import numpy as np
from onnx import ModelProto, TensorProto, helper, numpy_helper

#: Offsets of tensors in the data file are multiples of this.
ALIGNMENT = 64 * 1024
#: Tensors smaller than this stay inside the graph.
MIN_EXTERNAL_BYTES = 64 * 1024


class ExternalData:
    """The data file a graph's large initializers are written to, in the order made.

    Use as a context manager; :meth:`tensor` returns the ``TensorProto`` to put in the graph,
    which refers to the bytes just written (``location`` is the file's name, so the graph
    must be saved in the same folder).
    """

    def __init__(self, path: Path, min_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.min_bytes = MIN_EXTERNAL_BYTES if min_bytes is None else min_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("wb")
        self.written = 0  # bytes of tensor data, padding not counted

    def tensor(self, name: str, array: np.ndarray) -> TensorProto:
        """The initializer ``name`` of value ``array``: inside the graph when small, else
        written to the data file at the next aligned offset."""
        array = np.ascontiguousarray(array)
        if array.nbytes < self.min_bytes:
            return numpy_helper.from_array(array, name)
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        offset = -(-self._file.tell() // ALIGNMENT) * ALIGNMENT
        self._file.seek(offset)
        self._file.write(memoryview(array.reshape(-1)).cast("B"))
        self.written += array.nbytes
        tensor = TensorProto()
        tensor.name = name
        tensor.dims.extend(array.shape)
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.path.name), ("offset", str(offset)),
                           ("length", str(array.nbytes))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        return tensor

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> ExternalData:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
        if kind is not None:
            self.path.unlink(missing_ok=True)


def inline(model: ModelProto, data: Path) -> None:
    """Read every initializer ``model`` keeps in ``data`` back into the graph, exactly as if
    it had been made there (no ``data_location`` field either), so the saved file is the
    same bytes as a graph built in memory."""
    with data.open("rb") as handle:
        for tensor in model.graph.initializer:
            if tensor.data_location != TensorProto.EXTERNAL:
                continue
            place = {entry.key: entry.value for entry in tensor.external_data}
            handle.seek(int(place["offset"]))
            tensor.raw_data = handle.read(int(place["length"]))
            del tensor.external_data[:]
            tensor.ClearField("data_location")
