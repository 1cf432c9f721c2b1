"""Read a W&B offline run file (``run-*.wandb``) in tests: a LevelDB-style log of protobuf Records."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7  # checksum (4), length (2), type (1); the file starts with a 7-byte ":W&B" header too


def read_records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if not data:  # created, then killed before anything was written
        return []
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file")
    pos, buf, out = HEADER, b"", []
    while pos + HEADER <= len(data):
        left = BLOCK - (pos % BLOCK)
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        if length == 0 and kind == 0:
            break
        if pos + length > len(data):  # the tail of a file whose writer was killed
            break
        chunk, pos = data[pos:pos + length], pos + length
        if kind in (1, 2):  # FULL, FIRST
            buf = chunk
        else:  # MIDDLE, LAST
            buf += chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def _config(rec) -> dict:
    """A ConfigRecord's updates as top key -> value (wandb's own ``_wandb`` entry left out)."""
    return {_key(it): json.loads(it.value_json) for it in rec.update if _key(it) != "_wandb"}


def logged(path: str | Path) -> dict:
    """What an offline run file holds: ``keys`` (history keys; media under their top key),
    ``group``, ``job_type``, ``run_id``, ``name`` (the display name), ``tags``, ``config`` (top key ->
    value, the last update wins), ``summary`` (key -> value, the last update
    wins), ``artifacts`` (name -> {"type", "files"}) and ``tables`` (history key -> table columns)."""
    out = {"keys": set(), "group": None, "job_type": None, "run_id": None, "name": None, "tags": [], "config": {},
           "summary": {}, "artifacts": {}}
    for r in read_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            for it in r.history.item:
                out["keys"].add(it.key or it.nested_key[0])
        elif kind == "run":
            out.update(group=r.run.run_group, job_type=r.run.job_type, run_id=r.run.run_id, tags=list(r.run.tags),
                       name=r.run.display_name)
            out["config"].update(_config(r.run.config))
        elif kind == "config":
            out["config"].update(_config(r.config))
        elif kind == "summary":
            for it in r.summary.update:
                out["summary"][_key(it)] = json.loads(it.value_json)
        elif kind == "artifact":
            out["artifacts"][r.artifact.name] = {"type": r.artifact.type,
                                                 "files": sorted(e.path for e in r.artifact.manifest.contents)}
    return out
