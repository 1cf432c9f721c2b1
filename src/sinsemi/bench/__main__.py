from __future__ import annotations

import importlib
import sys

from sinsemi.bench import AREAS


def main(argv: list[str]) -> int:
    areas = list(AREAS) if not argv or argv == ["all"] else argv
    for area in areas:
        if area not in AREAS:
            print(f"unknown bench area '{area}'; known: {', '.join(AREAS)}", file=sys.stderr)
            return 2
        try:
            mod = importlib.import_module(f"sinsemi.bench.{area}")
        except ModuleNotFoundError as e:
            print(f"[{area}] not available: {e}")
            continue
        print(f"== bench: {area} ==", flush=True)
        mod.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
