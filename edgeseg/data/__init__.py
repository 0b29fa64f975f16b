"""Datasets, image I/O and transforms on numpy arrays.

This package imports only numpy and Pillow (never torch), so the ONNX Runtime / OpenVINO inference
path can use it in processes without torch.
"""

from __future__ import annotations

from edgeseg.data.files import (
    BatchIncomplete,
    SkipLog,
    Skipped,
    SkippedFileWarning,
    finish_batch,
    is_listed_image,
    list_images,
)
from edgeseg.data.folder import FolderDataset, check_declared_classes, read_class_names
from edgeseg.data.imageio import (
    IMAGE_SUFFIXES,
    parse_frame_size,
    parse_img_size,
    read_image,
    read_mask,
    resize_image,
    resize_mask,
    rgb_to_gray,
)
from edgeseg.data.split import DatasetView, SegmentationDataset, split_indices
from edgeseg.data.synthetic import SYNTHETIC_CLASSES, SyntheticDataset, render_scene
from edgeseg.data.transforms import (
    AUGMENT_OPS,
    DEFAULT_AUGMENT_OPS,
    DEFAULT_MEAN_GRAY,
    DEFAULT_MEAN_RGB,
    DEFAULT_STD_GRAY,
    DEFAULT_STD_RGB,
    Augment,
    AugmentConfig,
    default_normalization,
    normalize,
)

__all__ = [
    "AUGMENT_OPS",
    "DEFAULT_AUGMENT_OPS",
    "DEFAULT_MEAN_GRAY",
    "DEFAULT_MEAN_RGB",
    "DEFAULT_STD_GRAY",
    "DEFAULT_STD_RGB",
    "IMAGE_SUFFIXES",
    "SYNTHETIC_CLASSES",
    "Augment",
    "AugmentConfig",
    "BatchIncomplete",
    "DatasetView",
    "FolderDataset",
    "SegmentationDataset",
    "SkipLog",
    "Skipped",
    "SkippedFileWarning",
    "SyntheticDataset",
    "check_declared_classes",
    "default_normalization",
    "finish_batch",
    "is_listed_image",
    "list_images",
    "normalize",
    "parse_frame_size",
    "parse_img_size",
    "read_class_names",
    "read_image",
    "read_mask",
    "render_scene",
    "resize_image",
    "resize_mask",
    "rgb_to_gray",
    "split_indices",
]
