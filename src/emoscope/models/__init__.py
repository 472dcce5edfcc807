"""Model zoo: `create_model(name, num_classes, in_chans, **kw)` over a registry of architectures."""

from . import cnn, efficientnet, resnet, transfer  # noqa: F401  (importing registers the architectures)
from .registry import channels_last_hazard, count_flops, count_params, create_model, list_models, register

__all__ = ["channels_last_hazard", "count_flops", "count_params", "create_model", "list_models", "register"]
