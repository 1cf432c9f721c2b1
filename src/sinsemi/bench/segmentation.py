"""Bench: the quick downstream segmentation (U-Net fit on simulated images + scoring on the paper set).

Trains the ``quick`` profile's U-Net (conf/downstream/quick.yaml) on its ``n_train`` simulator
images with exact masks and scores the paper-style 50-image test set; prints the wall time of each
part and the IoU reached (a sanity figure, not a result).
"""

from __future__ import annotations

import time


def run() -> None:
    import torch

    from sinsemi.data.optics import make_reference_pair
    from sinsemi.data.testsets import paper_test_set, random_defect_test_set
    from sinsemi.jobs.config import compose, to_plain
    from sinsemi.metrics.segmentation import train_and_score
    from sinsemi.metrics.segmentation import SegConfig

    d = to_plain(compose("eval", ["profile=quick"]))["downstream"]
    cfg = SegConfig.from_dict(d)
    t0 = time.perf_counter()
    train = random_defect_test_set(cfg.n_train, seed=10_000)
    test = paper_test_set(make_reference_pair("line_pair", 0), seed=0)
    t_data = time.perf_counter() - t0
    out = train_and_score(train.images, train.masks, {"paper": (test.images, test.masks)}, cfg, seed=0)
    total = time.perf_counter() - t0
    print(f"segmentation quick ({cfg.encoder}, depth {cfg.encoder_depth}, {out.n_train} train images, "
          f"{out.epochs_run} epochs, {torch.get_num_threads()} threads): data {t_data:.1f} s, "
          f"fit {out.train_seconds:.1f} s, total {total:.1f} s; IoU on the paper set "
          f"{out.iou['paper'].mean:.3f} ± {out.iou['paper'].std:.3f}")
