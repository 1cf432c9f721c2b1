"""The training image of a job, from the ``data`` settings."""

from __future__ import annotations

from collections.abc import Mapping


def load_training_image(data: Mapping):
    """The training image (C, H, W): ``data.image`` from disk, else the simulator preset's defect
    image; refused when over ``data.max_side``, constant, or (float) outside [0, 1]."""
    from sinsemi.data.io import MAX_SIDE, check_size, check_trainable, load_trainable

    max_side = data.get("max_side", MAX_SIDE)
    if data.get("image"):
        return load_trainable(data["image"], max_side=max_side, name=f"data.image={data['image']}")
    from sinsemi.data.optics import make_reference_pair

    pair = make_reference_pair(data.get("preset", "line_pair"), seed=int(data.get("preset_seed", 0)))
    return check_trainable(check_size(pair.defect, max_side, name="the simulated training image"))
