"""SinSEMI: one-shot image generation for semiconductor inspection.

Python API (see README "Python API"): ``run = sinsemi.load_run(run_dir)``, ``run.generate(n, seed)``,
``run.export(out_dir, n)``. Imported on first use, so ``import sinsemi`` stays light.
"""

__version__ = "0.1.0"
__all__ = ["Run", "load_run", "__version__"]


def __getattr__(name: str):
    if name in ("Run", "load_run"):
        from sinsemi import api

        return getattr(api, name)
    raise AttributeError(f"module 'sinsemi' has no attribute {name!r}")
