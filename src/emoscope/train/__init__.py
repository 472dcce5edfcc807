"""Training engine: config, batched augmentation, the Trainer."""

from .augment import AugmentConfig, augment
from .config import TrainConfig
from .trainer import Trainer, predict_logits

__all__ = ["AugmentConfig", "TrainConfig", "Trainer", "augment", "predict_logits"]
