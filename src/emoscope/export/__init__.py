"""Export trained runs to ONNX with the metadata the runtime (and anyone else) needs."""

from .onnx import export_onnx

__all__ = ["export_onnx"]
