"""Run dirs: the unit of everything (resolved config, model, samples, metrics.json).

Layout of a training run dir::

    config.yaml            resolved config
    checkpoints/           training checkpoints (resume with ckpt_path=last)
    model/                 the fitted generator (generator.json + state.pt)
    samples/               default samples: 00000.png ..., samples.npz (float32), grid.png
    samples/<settings>/    re-samples with other sampler settings (sinsemi-sample)
    grid.png               grid of the default samples
    metrics.json           written last: its presence marks the run finished

A sweep dir holds ``experiment.json`` naming the experiment and profile that own it, so a rerun
into another experiment's sweep dir fails instead of mixing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from sinsemi.errors import InputError

MODEL_DIR = "model"
SAMPLES_DIR = "samples"
METRICS = "metrics.json"
EVAL_KEYS = ("sifid_mean", "lpips_mean", "defect_count_mean")
SEG_KEYS = ("iou_mean",)


def read_metrics(run_dir: str | Path) -> dict | None:
    """The metrics.json of a run dir, or None when absent."""
    path = Path(run_dir) / METRICS
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt {path}: {e}") from None


def is_finished(metrics: dict | None, *, evaluate: bool = False, segmentation: bool = False) -> bool:
    """A run is finished when metrics.json exists and holds what this job must produce."""
    if metrics is None:
        return False
    need = (EVAL_KEYS if evaluate else ()) + (SEG_KEYS if evaluate and segmentation else ())
    return all(k in metrics for k in need)


def claim_sweep_dir(sweep_dir: str | Path, experiment: str, profile: str | None) -> None:
    """Mark ``sweep_dir`` as ``experiment``'s (first job), or fail if another experiment owns it."""
    sweep_dir = Path(sweep_dir)
    marker = sweep_dir / "experiment.json"
    want = {"experiment": experiment, "profile": profile}
    if marker.exists():
        have = json.loads(marker.read_text())
        if have != want:
            raise InputError(
                f"sweep dir {sweep_dir} holds runs of experiment '{have.get('experiment')}' "
                f"(profile {have.get('profile')}), not '{experiment}' (profile {profile}): choose another hydra.sweep.dir"
            )
        return
    from sinsemi.data.io import save_json

    save_json(want, marker)
