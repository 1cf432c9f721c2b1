"""Run dirs: the unit of everything (resolved config, model, samples, metrics.json).

Layout of a training run dir::

    config.yaml            resolved config
    checkpoints/           training checkpoints (resume with ckpt_path=last)
    model/                 the fitted generator (generator.json + state.pt)
    samples/               default samples: 00000.png ..., samples.npz (float32), grid.png
    samples/<settings>/    re-samples with other sampler settings (sinsemi-sample)
    grid.png               grid of the default samples
    wandb_id.json          the W&B run id of each job type that logged here (resumed on rerun)
    metrics.json           written last: its presence marks the run finished

A sweep dir holds ``experiment.json`` naming the experiment and profile that own it, so a rerun
into another experiment's sweep dir fails instead of mixing runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from sinsemi.errors import InputError
from sinsemi.evaluation.keys import REQUIRED_EVAL, REQUIRED_SEG

MODEL_DIR = "model"
SAMPLES_DIR = "samples"
METRICS = "metrics.json"
#: the folder of a sweep that holds its budget-curve refits (``jobs.budget``): points, not table rows
BUDGET_DIR = "budget"
EVAL_KEYS = REQUIRED_EVAL  # the metric-key registry: sinsemi.evaluation.keys
SEG_KEYS = REQUIRED_SEG


def _read_json(path: Path) -> dict | None:
    """A run record (JSON) as data, None when absent; a corrupt one is one InputError naming it."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt {path}: {e}") from None


def read_metrics(run_dir: str | Path) -> dict | None:
    """The metrics.json of a run dir, or None when absent."""
    return _read_json(Path(run_dir) / METRICS)


def read_fingerprint(run_dir: str | Path) -> dict | None:
    """The fingerprint.json of a run dir (what its model was trained from), or None when absent."""
    return _read_json(Path(run_dir) / FINGERPRINT)


#: keys only the job itself writes, with its final metrics.json (an evaluation inside the job
#: merges its own metrics.json first: that one alone does not make the job finished)
TRAIN_KEYS = ("image_shape", "fit_seconds")
SAMPLE_KEYS = ("run_dir", "sample_seconds")


def is_finished(metrics: dict | None, *, evaluate: bool = False, segmentation: bool = False,
                job: tuple[str, ...] = (), seg_settings: dict | None = None) -> bool:
    """A run is finished when metrics.json exists and holds what this job must produce; with the
    U-Net and ``seg_settings`` given (:meth:`~sinsemi.evaluation.EvalConfig.seg_settings` of the
    job), its U-Net figures must also have been made with those settings."""
    if metrics is None:
        return False
    need = (EVAL_KEYS if evaluate else ()) + (SEG_KEYS if evaluate and segmentation else ()) + tuple(job)
    if not all(k in metrics for k in need):
        return False
    return not (evaluate and segmentation and seg_settings is not None and metrics.get("seg_settings") != seg_settings)


def run_finished(run_dir: str | Path, metrics: dict | None, *, evaluate: bool = False, segmentation: bool = False,
                 job: tuple[str, ...] = (), seg_settings: dict | None = None) -> bool:
    """The rule sweeps skip a run by, and ``make status`` reports: :func:`is_finished` on its
    ``metrics`` (read from ``run_dir``) and its ``grid.png`` written (the last picture a job writes)."""
    return (is_finished(metrics, evaluate=evaluate, segmentation=segmentation, job=job, seg_settings=seg_settings)
            and (Path(run_dir) / "grid.png").exists())



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


# ----------------------------------------------------------------------------- fingerprint
FINGERPRINT = "fingerprint.json"
PROGRESS = "progress.json"
WANDB_ID = "wandb_id.json"
#: what --force-style reruns discard when the fingerprint differs (the run's model and its products)
MODEL_ARTIFACTS = ("model", "checkpoints", "snapshots", "samples", "grid.png", "overview.png", "metrics.json",
                   FINGERPRINT, PROGRESS, WANDB_ID)


def image_sha256(image) -> str:
    """sha256 of a (C, H, W) image's shape and float32 pixels: equal images, equal hash."""
    import hashlib

    import numpy as np

    arr = np.ascontiguousarray(image.detach().float().cpu().numpy())
    h = hashlib.sha256(repr(tuple(arr.shape)).encode())
    h.update(arr.tobytes())
    return h.hexdigest()


def model_params(generator: str, params: dict) -> dict:
    """The generator params (a config's, as given) the fitted model depends on, sorted by key: all but
    the parameter dataclass's fields marked ``model=False`` (memory or speed only, e.g. SinSEMI's
    sample_batch, fast_kernels, compile: a run started before such a key resumes).
    See :func:`sinsemi.generators.params.model_keys`."""
    from sinsemi.generators.params import model_keys

    return {k: params[k] for k in model_keys(generator, params)}


def make_fingerprint(generator: str, params: dict, image, *, seed: int, max_steps: int | None) -> dict:
    """What the fitted model depends on: generator, its params, the image, the seed and the budget."""
    return {"generator": generator,
            "params": model_params(generator, params),
            "image_sha256": image_sha256(image), "image_shape": list(image.shape),
            "seed": int(seed), "max_steps": None if max_steps is None else int(max_steps)}


def _added_at_default(generator: str, key: str, value) -> bool:
    """A parameter the run's fingerprint lacks because it was added to the generator later: at its
    default it names the behaviour the run was trained with (options are added with the old
    behaviour as default), so it is no difference."""
    from dataclasses import MISSING, fields

    from sinsemi.generators.params import params_class

    try:
        f = {f.name: f for f in fields(params_class(generator))}.get(key)
    except (InputError, KeyError, ValueError):
        return False
    if f is None:
        return False
    default = f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default
    return default is not MISSING and value == default


def _differences(old: dict, new: dict) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if key == "params" and isinstance(a, dict) and isinstance(b, dict):
            out += [f"generator.{k}={a.get(k)!r} there, {b.get(k)!r} here" for k in sorted(set(a) | set(b))
                    if a.get(k) != b.get(k)
                    and not (k not in a and _added_at_default(str(new.get("generator")), k, b[k]))]
        elif a != b:
            if key == "image_sha256":
                out.append("another training image (pixel hash differs)")
            else:
                out.append(f"{key}={a!r} there, {b!r} here")
    return out


def has_model_artifacts(run_dir: str | Path) -> bool:
    run_dir = Path(run_dir)
    return any((run_dir / p).exists() for p in ("model", "checkpoints", "samples", METRICS))


def discard_model_artifacts(run_dir: str | Path) -> None:
    import shutil

    for name in MODEL_ARTIFACTS:
        p = Path(run_dir) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def check_fingerprint(run_dir: str | Path, fp: dict, *, force: bool = False) -> bool:
    """Refuse to reuse or resume a run dir whose model was made from other inputs.

    Returns True when the run dir holds nothing of an earlier run (the fingerprint is to be
    written). With ``force`` a mismatching run's model, checkpoints and samples are deleted instead.
    A model, checkpoints or samples without ``fingerprint.json`` count as made from other inputs."""
    run_dir = Path(run_dir)
    path = run_dir / FINGERPRINT
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"corrupt {path}: {e} (delete the run dir or use force=true)") from None
        why = _differences(old, fp)
    elif has_model_artifacts(run_dir):
        # deleted, or a run from before fingerprints: nothing says which image it was made from, so
        # it is never adopted (and its fingerprint never rewritten) to match the new inputs
        why = _legacy_differences(run_dir, fp) or [f"no {FINGERPRINT}: the image it was made from is unknown"]
    else:
        return True
    if not why:
        return False
    if force:
        discard_model_artifacts(run_dir)
        return True
    raise InputError(f"run dir {run_dir} holds a run made from other inputs ({'; '.join(why)}): "
                     "use another hydra.run.dir, or force=true to delete its model, checkpoints and samples and start again")


def _legacy_differences(run_dir: Path, fp: dict) -> list[str]:
    """A run dir from before fingerprints: compare what its config.yaml says."""
    import yaml

    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        return ["no fingerprint.json or config.yaml: unknown inputs"]
    try:
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except yaml.YAMLError as e:
        return [f"unreadable config.yaml ({e})"]
    gen = dict(cfg.get("generator") or {})
    name = gen.pop("name", None)
    old = {"generator": name, "params": model_params(name, gen) if name == fp["generator"] else gen,
           "seed": cfg.get("seed"), "max_steps": (cfg.get("trainer") or {}).get("max_steps")}
    return _differences(old, {k: fp[k] for k in old})


#: what a train job writes into a fresh run dir before its generator's own checks of the image
FRESH_START = (FINGERPRINT, "config.yaml", PROGRESS, WANDB_ID)


def forget_fresh_start(run_dir: str | Path) -> None:
    """Undo a fresh start that failed on bad input before the run made anything (e.g. an image too
    small for the generator's pyramid, found by its fit): the fingerprint, config, progress and W&B
    id this job wrote go, so the corrected command runs without ``force``. A no-op once the run has
    a model, checkpoints or samples."""
    run_dir = Path(run_dir)
    if has_model_artifacts(run_dir):
        return
    for name in FRESH_START:
        (run_dir / name).unlink(missing_ok=True)


def write_fingerprint(run_dir: str | Path, fp: dict) -> None:
    from sinsemi.data.io import save_json

    save_json(fp, Path(run_dir) / FINGERPRINT)


def read_progress(run_dir: str | Path) -> dict:
    path = Path(run_dir) / PROGRESS
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


def add_progress(run_dir: str | Path, **seconds: float) -> dict:
    """Add seconds spent (fit_seconds=..., ...) to the run's totals; returns the totals."""
    from sinsemi.data.io import save_json

    prog = read_progress(run_dir)
    for k, v in seconds.items():
        prog[k] = round(float(prog.get(k, 0.0)) + float(v), 2)
    save_json(prog, Path(run_dir) / PROGRESS)
    return prog


def logger_run_id(run_dir: str | Path, job_type: str, new) -> str:
    """The W&B run id of ``job_type``'s job in ``run_dir``: the one stored in ``wandb_id.json`` by an
    earlier attempt (a requeue, a resume after kill -9), else ``new()``, stored before it is used."""
    from sinsemi.data.io import save_json

    path = Path(run_dir) / WANDB_ID
    try:
        ids = json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt {path}: {e} (delete it to start a new W&B run)") from None
    if not isinstance(ids, dict):
        raise InputError(f"{path} must map job types to W&B run ids, got {type(ids).__name__} (delete it)")
    if not ids.get(job_type):
        ids[job_type] = str(new())
        save_json(ids, path)
    return str(ids[job_type])


def run_generator(run_dir: str | Path) -> str:
    """The generator of a training run dir; config.yaml and model/generator.json must agree."""
    import yaml

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise InputError(f"{run_dir} is not a training run dir (no config.yaml): train it first with sinsemi-train")
    try:
        name = ((yaml.safe_load(cfg_path.read_text()) or {}).get("generator") or {}).get("name")
    except yaml.YAMLError as e:
        raise InputError(f"corrupt {cfg_path}: {e}") from None
    meta = run_dir / MODEL_DIR / "generator.json"
    if meta.exists():
        try:
            model_name = json.loads(meta.read_text()).get("name")
        except json.JSONDecodeError as e:
            raise InputError(f"corrupt {meta}: {e}") from None
        if model_name != name:
            raise InputError(f"{run_dir} is inconsistent: config.yaml names generator '{name}' but {meta} holds a "
                             f"'{model_name}' model (retrain into a new run dir)")
    if not name:
        raise InputError(f"{cfg_path} names no generator")
    return name


# ----------------------------------------------------------------------------- a run dir read back
def _interpolations(node, prefix: str = "") -> list[str]:
    """Dotted keys of every string in ``node`` holding ``${`` (an OmegaConf interpolation, once copied
    into a live config: ``${oc.env:SECRET}`` would be resolved)."""
    if isinstance(node, dict):
        return [k for key, v in node.items() for k in _interpolations(v, f"{prefix}{key}.")] + \
               [f"{prefix}{key}" for key in node if "${" in str(key)]
    if isinstance(node, list):
        return [k for i, v in enumerate(node) for k in _interpolations(v, f"{prefix}{i}.")]
    return [prefix.rstrip(".")] if isinstance(node, str) and "${" in node else []


def read_run_config(run_dir: str | Path) -> dict:
    """A training run's ``config.yaml`` as plain data, never as config: read with ``yaml.safe_load``
    (no OmegaConf, so nothing resolves), refused when a stored string holds ``${`` (a job that
    copies it into its live config would resolve it: ``${oc.env:WANDB_API_KEY}`` would leak the
    key into folder names, logs and metrics), and checked against the run's own records: its
    ``generator.*``, ``seed`` and ``trainer.max_steps`` must be what ``fingerprint.json`` says the
    model was trained with, its ``sampler.*`` what the training job sampled with (``metrics.json``).
    A hand-edited config.yaml is one :class:`InputError` naming the key."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.exists():
        raise InputError(f"{run_dir} is not a training run dir (no config.yaml): train it first with sinsemi-train")
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(f"corrupt {path}: {' '.join(str(e).split())}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"corrupt {path}: a mapping of settings expected, got {type(cfg).__name__}")
    for key, kind in (("generator", dict), ("sampler", dict), ("trainer", dict)):
        if cfg.get(key) is not None and not isinstance(cfg[key], kind):
            raise InputError(f"corrupt {path}: {key} must be a mapping, got {cfg[key]!r}")
    bad = _interpolations(cfg)
    if bad:
        raise InputError(f"{path} holds an interpolation ('${{...}}') at {', '.join(bad)}: a run dir's settings are "
                         "data and are never resolved; restore the value the run was trained with")
    _check_against_records(Path(run_dir), path, cfg)
    return cfg


def _check_against_records(run_dir: Path, path: Path, cfg: dict) -> None:
    fp = read_fingerprint(run_dir)
    if fp is not None:
        gen = dict(cfg.get("generator") or {})
        stored = {"generator.name": (gen.pop("name", None), fp.get("generator")),
                  "seed": (cfg.get("seed"), fp.get("seed")),
                  "trainer.max_steps": ((cfg.get("trainer") or {}).get("max_steps"), fp.get("max_steps"))}
        params = fp.get("params") or {}
        mine = model_params(str(fp.get("generator")), gen) if gen else {}
        stored.update({f"generator.{k}": (mine.get(k), params.get(k)) for k in sorted(set(mine) | set(params))})
        for key, (have, want) in stored.items():
            if have != want:
                raise InputError(f"{path} says {key}={have!r} but the run's model was trained with {key}={want!r} "
                                 f"({FINGERPRINT}): the config was edited; restore it, or train a new run")
    trained = (read_metrics(run_dir) or {}).get("sampler")
    if isinstance(trained, dict):
        for key, have in (cfg.get("sampler") or {}).items():
            if key in trained and trained[key] != have:
                raise InputError(f"{path} says sampler.{key}={have!r} but the run sampled with sampler.{key}="
                                 f"{trained[key]!r} ({METRICS}): the config was edited; restore it, or set "
                                 f"sampler.{key}= on the command line")


class accumulating:
    """Context manager adding the wall seconds spent inside it to ``progress.json[key]`` (and, with
    ``cpu_key``, the process's CPU seconds, every thread, to ``progress.json[cpu_key]``: the compute a
    busy or paused machine does not inflate), also every ``every`` seconds while it runs, so an
    attempt killed with -9 still counts (up to ``every``)."""

    def __init__(self, run_dir: str | Path, key: str, every: float = 30.0, cpu_key: str | None = None):
        self.run_dir, self.key, self.every, self.cpu_key = Path(run_dir), key, every, cpu_key

    def _flush(self) -> None:
        import time

        with self._lock:
            now, cpu = time.perf_counter(), time.process_time()
            spent = {self.key: now - self._last}
            if self.cpu_key:
                spent[self.cpu_key] = cpu - self._last_cpu
            add_progress(self.run_dir, **spent)
            self._last, self._last_cpu = now, cpu

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._flush()
            except Exception:  # bookkeeping must never break a fit
                pass

    def __enter__(self):
        import threading
        import time

        self._lock, self._stop = threading.Lock(), threading.Event()
        self._last, self._last_cpu = time.perf_counter(), time.process_time()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"progress-{self.key}")
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._flush()
