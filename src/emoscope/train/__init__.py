"""Training engine: typed config, batched augmentation (`augment`), the `Trainer` (`trainer`).

Only the torch-free config is imported here, so the CLI can describe `train` without torch."""

from .config import AugmentConfig, TrainConfig

__all__ = ["AugmentConfig", "TrainConfig"]
