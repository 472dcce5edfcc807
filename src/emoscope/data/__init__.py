"""Dataset readers, in-memory cache, inspection and audit (the first stage of the torch side)."""

from .dataset import Dataset, load_dataset, stratified_holdout
from .readers import DatasetError

__all__ = ["Dataset", "DatasetError", "load_dataset", "stratified_holdout"]
