"""``make bench`` / ``python -m sinsemi.bench [area ...|all]``: print measured speed figures.

Each area is a module ``sinsemi.bench.<area>`` with a ``run() -> None`` that prints what it
measured (never a hard-coded figure). Areas run in the order of :data:`AREAS`.
"""

AREAS = ("data", "sinsemi", "metrics", "segmentation", "generators")
