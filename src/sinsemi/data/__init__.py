"""Data: image I/O and validation, pyramids, the optical simulator and test sets."""

from sinsemi.data.io import check_trainable, load_image, load_mask, save_png
from sinsemi.data.pyramid import Pyramid, build_pyramid, pyramid_sizes, resize

__all__ = ["Pyramid", "build_pyramid", "check_trainable", "load_image", "load_mask", "pyramid_sizes", "resize", "save_png"]
