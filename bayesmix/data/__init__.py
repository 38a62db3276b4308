"""Data layer of bayesmix: example data sets and validation of wide data."""

from bayesmix.data.datasets import dataset_items, list_datasets, load_dataset
from bayesmix.data.item_kinds import ItemInfo
from bayesmix.data.validate import PreparedData, prepare_wide

__all__ = [
    "ItemInfo",
    "PreparedData",
    "dataset_items",
    "list_datasets",
    "load_dataset",
    "prepare_wide",
]
