"""Test helper, loaded by Python at start-up when this folder is first on PYTHONPATH: records every
file a process opens for writing (``open``/``io.open``/``os.open``) or moves into place
(``os.replace``/``os.rename``) under ``$SINSEMI_WRITE_SPY_ROOT``, one ``rank<TAB>call<TAB>path`` line
per write in ``$SINSEMI_WRITE_SPY`` (rank: ``$LOCAL_RANK``, which Lightning's DDP launcher sets).
Without both variables it does nothing. Used by tests/test_ddp.py to prove rank 1 writes nothing."""

import builtins
import io
import os

_LOG, _ROOT = os.environ.get("SINSEMI_WRITE_SPY"), os.environ.get("SINSEMI_WRITE_SPY_ROOT")

if _LOG and _ROOT:
    _open, _os_open, _replace, _rename = builtins.open, os.open, os.replace, os.rename
    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND

    def _note(path, call):
        try:
            p = os.path.abspath(os.fsdecode(path))
        except TypeError:  # a file descriptor
            return
        if p.startswith(_ROOT):
            with _open(_LOG, "a") as f:
                f.write(f"{os.environ.get('LOCAL_RANK', '0')}\t{call}\t{p}\n")

    def _spy_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            _note(file, "open")
        return _open(file, mode, *args, **kwargs)

    def _spy_os_open(path, flags, *args, **kwargs):
        if flags & _WRITE_FLAGS:
            _note(path, "os.open")
        return _os_open(path, flags, *args, **kwargs)

    def _spy_replace(src, dst, *args, **kwargs):
        _note(dst, "replace")
        return _replace(src, dst, *args, **kwargs)

    def _spy_rename(src, dst, *args, **kwargs):
        _note(dst, "rename")
        return _rename(src, dst, *args, **kwargs)

    builtins.open = io.open = _spy_open
    os.open, os.replace, os.rename = _spy_os_open, _spy_replace, _spy_rename
