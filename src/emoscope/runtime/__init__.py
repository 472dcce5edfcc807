"""Inference runtime: face detection (OpenCV) and ONNX classification. Never imports torch."""

from .assets import ModelNotFoundError, embedded_model, yunet_model
from ..contract import ModelMetadataError
from .classifier import ExpressionClassifier
from .detector import Detection, FaceDetector, FullFrameDetector, YuNetDetector, create_detector

__all__ = ["Detection", "ExpressionClassifier", "FaceDetector", "FullFrameDetector", "ModelMetadataError",
           "ModelNotFoundError", "YuNetDetector", "create_detector", "embedded_model", "yunet_model"]
