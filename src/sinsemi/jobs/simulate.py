"""The simulation job (``sinsemi-simulate``): write a simulator preset's reference pair (and optionally a test set).

``DIR/defect.png``, ``DIR/reference.png`` (defect-free, same layout, independent noise),
``DIR/mask.png`` (0/255) and ``DIR/meta.json`` (every parameter). With ``test_set=paper|random``
also ``DIR/test_<kind>/`` (``NNNNN.png``, ``NNNNN_mask.png``, ``meta.json``). Everything is
simulated before anything is written; every file is written atomically and the test-set folder is
assembled under a temporary name and renamed into place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.jobs.config import to_plain

TEST_SETS = ("paper", "random")


def _overrides(cfg: dict) -> dict:
    groups = {k: dict(v) for k, v in (cfg.get("overrides") or {}).items() if v}
    if cfg.get("photon_budget") is not None:
        groups.setdefault("sensor", {})["photon_budget"] = cfg["photon_budget"]
    return groups


def simulate_run(cfg: Mapping) -> Path:
    """Simulate, then write; returns the output dir. ``cfg``: the resolved ``simulate`` config."""
    cfg = to_plain(cfg)
    from sinsemi.validation import check_number, check_seed, check_writable_dir

    preset, seed = str(cfg["preset"]), check_seed("seed", cfg["seed"])
    check_writable_dir(cfg["out_dir"], "out_dir")

    from sinsemi.data.io import current_umask, ensure_dir, save_json, save_mask, save_png
    from sinsemi.data.optics import get_preset, make_reference_pair
    test_set = cfg.get("test_set")
    if test_set is not None and test_set not in TEST_SETS:
        raise InputError(f"unknown test_set {test_set!r}; known: {', '.join(TEST_SETS)} (or null)")
    overrides = _overrides(cfg)
    get_preset(preset)  # unknown preset: one clear error before any work
    pair = make_reference_pair(preset, seed, **overrides)
    tset = None
    if test_set is not None:
        n = check_number("n", cfg["n"], integer=True)
        if n < 2:
            raise InputError(f"test-set size n must be >= 2, got {n}")
        if overrides:
            raise InputError("test sets use the preset's scene: drop the overrides/photon_budget or simulate without test_set")
        from sinsemi.data.testsets import paper_test_set, random_defect_test_set

        tset = paper_test_set(pair, seed=seed, n_per_class=n // 2) if test_set == "paper" else \
            random_defect_test_set(n, preset=preset, seed=seed)
    out = ensure_dir(cfg["out_dir"])
    save_png(pair.defect, out / "defect.png")
    save_png(pair.clean, out / "reference.png")
    save_mask(pair.mask, out / "mask.png")
    save_json(pair.meta, out / "meta.json")
    if tset is not None:
        final = out / f"test_{test_set}"
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=f".test_{test_set}.partial-"))
        try:
            os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp's 0700 would hide the set from the rest of a team
            for i, name in enumerate(tset.names):
                save_png(tset.images[i], tmp / f"{i:05d}.png")
                save_mask(tset.masks[i], tmp / f"{i:05d}_mask.png")
            save_json({"info": tset.info, "names": tset.names, "meta": tset.meta}, tmp / "meta.json")
            if final.exists():
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(f"wrote {out}/defect.png, reference.png, mask.png, meta.json"
          + (f" and {len(tset)} test images in {out}/test_{test_set}/" if tset is not None else ""))
    return out
