"""OnnxChat: offline desktop chat for local language models, on ONNX Runtime."""

__version__ = "0.1.0"
