"""Data: built-in datasets and files, splits, preprocessing (fitted on training data only),
augmentation."""

from nntune.data import augment_images, augment_series  # noqa: F401  (register augmentations)
from nntune.data.augment import AUGMENT, Augmentation, AugmentContext, Batch
from nntune.data.datasets import DATASETS, RawDataset, load_dataset
from nntune.data.pipeline import DataBundle, Pipeline, prepare_data
from nntune.data.preprocess import PREPROCESS
from nntune.data.profile import DataProfile, profile_frame, suggest_preprocess
from nntune.data.user import default_workers  # also: the adapters of the user's components

__all__ = [
    "AUGMENT",
    "DATASETS",
    "PREPROCESS",
    "AugmentContext",
    "Augmentation",
    "Batch",
    "DataBundle",
    "DataProfile",
    "Pipeline",
    "RawDataset",
    "default_workers",
    "load_dataset",
    "prepare_data",
    "profile_frame",
    "suggest_preprocess",
]
