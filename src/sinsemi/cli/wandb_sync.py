"""``make wandb-sync DIR=...``: upload every offline W&B run under a directory; fail when one does not upload.

    python -m sinsemi.cli.wandb_sync [DIR ...] [--include-synced] [--timeout SECONDS]

The work: :mod:`sinsemi.tracking.wandb_sync`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sinsemi.errors import InputError
from sinsemi.tracking.wandb_sync import offline_runs, sync, wandb_sync_command  # noqa: F401  (the sync's API, here too)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="make wandb-sync", description=__doc__.split("\n\n")[0])
    ap.add_argument("dirs", nargs="*", default=["outputs"], help="directories to search (default: outputs)")
    ap.add_argument("--include-synced", action="store_true", help="upload runs marked as uploaded again")
    ap.add_argument("--timeout", type=float, default=None, help="give up after this many seconds (default: wait)")
    args = ap.parse_args(argv)
    try:
        rep = sync(args.dirs, include_synced=args.include_synced, timeout=args.timeout)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    where = ", ".join(args.dirs)
    print(f"{len(rep.found)} offline W&B runs under {where}: {len(rep.synced)} uploaded now, "
          f"{len(rep.skipped)} uploaded before, {len(rep.failed)} failed")
    if rep.failed:
        print(f"error: {len(rep.failed)} offline runs did not upload (wandb's messages above say why): "
              + " ".join(map(str, rep.failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
