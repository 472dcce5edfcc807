"""The one way the runtime opens an ONNX file: onnxruntime on the CPU, with a thread cap."""

from __future__ import annotations

import os

import onnxruntime as ort

from .assets import ModelNotFoundError


def cpu_session(path: str, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime CPU session; `threads` caps intra-op threads (0: onnxruntime's default).
    Idle threads sleep instead of spinning: in a video the decoder thread needs that core
    (1.2-1.5x the FPS, measured), and batched throughput is the same."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"model file {path!r} does not exist")
    try:
        return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    except (ort.capi.onnxruntime_pybind11_state.Fail, ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
            ort.capi.onnxruntime_pybind11_state.InvalidGraph, ort.capi.onnxruntime_pybind11_state.NotImplemented):
        raise ModelNotFoundError(f"{path} is not an ONNX model that onnxruntime can load") from None
