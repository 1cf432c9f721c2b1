"""Data bench: time to simulate 1000 ``line_pair`` images (96 x 96), each with its own layout
randomness, the preset's bridge and its own sensor noise (``simulate_batch``)."""

from __future__ import annotations

import time

import torch

N_IMAGES = 1000


def run(n: int = N_IMAGES) -> dict:
    from sinsemi.data.optics import get_preset, imager_for, simulate_batch

    p = get_preset("line_pair")
    t0 = time.perf_counter()
    imager_for(p.scene.optics, p.scene.fov, p.scene.sensor.binning)  # imaging matrices, built once per preset
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    b = simulate_batch(p.scene, [list(p.defects)] * n, list(range(n)))
    t_sim = time.perf_counter() - t0
    h, w = b.images.shape[-2:]
    print(f"simulate {n} line_pair images ({h}x{w}, bridge, independent noise): {t_sim:.2f} s "
          f"({1e3 * t_sim / n:.2f} ms/image; imaging set-up {1e3 * t_setup:.0f} ms, once per preset; "
          f"torch threads {torch.get_num_threads()}; target <= 10 s)")
    return {"n": n, "seconds": t_sim, "setup_seconds": t_setup}


if __name__ == "__main__":
    run()
