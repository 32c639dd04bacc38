"""Write files and folders so that an interrupted run never leaves a half-written result.

A write goes to a temporary ``.<name>.<random>.tmp`` beside its target and is renamed over the target only
when complete. While a temporary exists its writer holds an advisory lock on it (``flock``, where the
platform has it), so a later run can tell a temporary abandoned by a killed process (old and unlocked) from
one still being written, and removes the abandoned ones (:func:`sweep_stale`) before it writes there.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; stale temporaries are told apart by age alone
    fcntl = None  # type: ignore[assignment]

STALE_SECONDS = 3600.0  # a temporary untouched for this long and unlocked was left by a killed run
TEMP_PATTERN = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp$")  # tempfile's ".<target name>.XXXXXXXX.tmp"
_swept: set[str] = set()  # folders already swept by this process


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _lock_fd(fd: int, *, blocking: bool = True) -> bool:
    """Take an exclusive advisory lock on ``fd``; False if ``blocking`` is off and someone else holds it."""
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: behave as if unlocked
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sweep_stale(folder: str | os.PathLike, max_age: float = STALE_SECONDS) -> list[Path]:
    """Remove temporaries in ``folder`` that a killed run left behind: named like this module's
    temporaries, untouched for ``max_age`` seconds and not locked by a live writer. Returns what went.

    Never raises: a folder that is missing or read-only is simply left as it is.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not TEMP_PATTERN.match(entry.name):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < max_age:
                continue
            is_dir = entry.is_dir(follow_symlinks=False)
            fd = os.open(entry.path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if not _lock_fd(fd, blocking=False):
                continue  # a live writer holds it (a long build): leave it alone
            if is_dir:
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _sweep_once(folder: Path) -> None:
    key = str(folder)
    if key not in _swept:
        _swept.add(key)
        sweep_stale(folder)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` only if the block succeeds.

    With ``fsync`` (checkpoints use it) the file's bytes reach the disk before the rename, and the rename
    after it, so even a power cut leaves either the old file or the complete new one.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(target.parent)
    fd: int | None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    if fcntl is not None:
        _lock_fd(fd)  # held until the temporary is gone: marks it as live for sweep_stale
    else:  # Windows cannot rename a file that is open
        os.close(fd)
        fd = None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        if fsync:
            with open(tmp_path, "r+b") as written:  # the block may have replaced the file: sync what is there now
                os.fsync(written.fileno())
        os.replace(tmp_path, target)
        if fsync:
            _fsync_dir(target.parent)
    finally:
        tmp_path.unlink(missing_ok=True)
        if fd is not None:
            os.close(fd)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it becomes ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    fd: int | None = None
    if fcntl is not None:
        fd = os.open(tmp, os.O_RDONLY)
        _lock_fd(fd)  # held until the folder is renamed or removed: marks it as live for sweep_stale
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700 folders
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if fd is not None:
            os.close(fd)


def sweep_home() -> None:
    """Remove temporaries that killed runs left in ``$TRUSTKIT_HOME``'s checkpoint store, detection sets and
    cell cache (older than an hour, unlocked). Imports no torch: every command runs it first."""
    from trustkit.paths import home

    root = home()
    for folder in (root / "checkpoints", root / "detection", root / "cells"):
        sweep_stale(folder)
    try:  # the cell cache keeps its files in shards cells/<2 hex digits>/
        shards = [entry.path for entry in os.scandir(root / "cells") if len(entry.name) == 2 and entry.is_dir()]
    except OSError:
        shards = []
    for shard in shards:
        sweep_stale(shard)
