"""Read a W&B offline run file (``run-*.wandb``) in tests: a LevelDB-style log of protobuf Records."""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32768
HEADER = 7  # checksum (4), length (2), type (1); the file starts with a 7-byte ":W&B" header too


def read_records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
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


def logged(path: str | Path) -> dict:
    """{'keys': history keys, 'group': run group, 'job_type': job type} of an offline run file."""
    keys, group, job_type = set(), None, None
    for r in read_records(path):
        kind = r.WhichOneof("record_type")
        if kind == "history":
            keys |= {it.key or it.nested_key[0] for it in r.history.item}  # media: nested under the key
        elif kind == "run":
            group, job_type = r.run.run_group, r.run.job_type
    return {"keys": keys, "group": group, "job_type": job_type}
