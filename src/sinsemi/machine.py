"""The machine a figure was measured on, as the committed tables name it."""

from __future__ import annotations

import platform


def cpu_name() -> str:
    """'<CPU model> (<n> cores, AVX-512: yes|no)' from /proc/cpuinfo (Linux), else what platform knows."""
    model, flags, cores = "", set(), 0
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = model or line.split(":", 1)[1].strip()
                cores += 1
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "unknown CPU"
    if not cores:
        return model
    avx512 = "yes" if any(f.startswith("avx512") for f in flags) else "no"
    return f"{model} ({cores} cores, AVX-512: {avx512})"
