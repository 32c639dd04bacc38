"""Checkpoints: one safetensors file holding the weights and, in its header, the metadata. Nothing is unpickled.

A checkpoint ``NAME.safetensors`` carries its metadata (architecture, data set, input shape, normalisation,
training recipe, seed, metrics) as JSON under the header key ``trustkit``, so weights and metadata are written
by one atomic rename and can never disagree. Older checkpoints (format version 1) kept the metadata beside the
weights in ``NAME.json``; those still load (the header wins when both exist), and re-saving one writes the
single file and removes the old JSON.

The store keeps zoo checkpoints under ``$TRUSTKIT_HOME/checkpoints``. Every write takes a per-entry file
lock (under ``$TRUSTKIT_HOME/locks``), and the file is fsynced before it is renamed into place.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from trustkit._version import __version__
from trustkit.atomic import atomic_path
from trustkit.data import get_spec
from trustkit.errors import CheckpointError
from trustkit.models import MODELS
from trustkit.paths import file_label, home

FORMAT = "trustkit-checkpoint"
FORMAT_VERSION = 2  # 1: metadata in a sibling .json; 2: metadata in the safetensors header
METADATA_KEY = "trustkit"  # safetensors header key holding the metadata JSON
LOCK_WAIT_NOTICE_SECONDS = 0.5  # say that we wait for another process after this long

_warned_read_only: set[str] = set()


def store_dir() -> Path:
    """Folder of the checkpoint store: ``$TRUSTKIT_HOME/checkpoints``."""
    return home() / "checkpoints"


def store_name(arch: str, dataset: str) -> str:
    """Store entry of the clean zoo model ``arch`` trained on ``dataset``, e.g. ``cnn-digits``.

    Names are canonical (aliases resolved: ``logreg`` -> ``softmax``), so every spelling finds one entry.
    Adversarially trained entries append their recipe and ε; that suffix is :func:`trustkit.train.store_name`'s,
    because recipes live in the train layer.
    """
    return f"{MODELS.canonical(arch)}-{get_spec(dataset).name}"


def store_path(name: str) -> Path:
    """Weights path of the store entry ``name`` (e.g. ``cnn-digits``; a name holding a path, as entries of a
    ``folder:`` data set do, becomes a safe file name)."""
    return store_dir() / f"{file_label(name)}.safetensors"


def _weights_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")


def metadata_path(weights: Path) -> Path:
    """Where a checkpoint of the old two-file format kept its metadata (read for compatibility only)."""
    return Path(weights).with_suffix(".json")


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file guarding writes of checkpoint ``path``: ``$TRUSTKIT_HOME/locks/<path hash>-NAME.lock``.

    Locks live apart from the checkpoints (filelock leaves its files behind on Unix), so neither the store nor a
    user's ``--out`` folder collects them; a home that cannot be written keeps them in the temporary folder.
    """
    path = _weights_path(path)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    folder = home() / "locks"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "trustkit-locks"
    return folder / f"{digest}-{path.stem}.lock"


@contextlib.contextmanager
def entry_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold the per-entry lock of checkpoint ``path`` (re-entrant in one thread, exclusive across threads
    and processes). ``waiting`` is logged when another process holds it for more than a moment."""
    from filelock import FileLock, Timeout

    from trustkit.runtime import log

    target = lock_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target), is_singleton=True)
    try:
        lock.acquire(timeout=LOCK_WAIT_NOTICE_SECONDS)
    except Timeout:
        if waiting:
            log(waiting)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def writable_reason(folder: str | os.PathLike) -> str | None:
    """None if files can be created in ``folder`` (or, while it does not exist yet, in its nearest existing
    ancestor: probing creates nothing), else why not (one short phrase).

    This tries a real write rather than asking ``os.access``, which says yes to root on a read-only folder.
    """
    folder = Path(folder)
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    if folder.exists() and not folder.is_dir():
        return "Not a directory"
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def home_writable(folder: str | os.PathLike | None = None) -> bool:
    """True if ``folder`` (default: the checkpoint store) can be written. If not, warns once per process
    that trustkit runs without storing models or caching cells, and how to fix it."""
    folder = Path(folder) if folder is not None else store_dir()
    reason = writable_reason(folder)
    if reason is None:
        return True
    root = home()
    where = f"TRUSTKIT_HOME {root}" if folder == root or root in folder.parents else str(folder)
    if where not in _warned_read_only:
        _warned_read_only.add(where)
        from trustkit.runtime import log

        log(f"warning: {where} is not writable ({reason}); running with the cell cache off and trained models "
            "kept in memory only; set TRUSTKIT_HOME to a writable folder to keep them")
    return False


def save_checkpoint(model: nn.Module, metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``model``'s state dict and ``metadata`` to the one file ``path`` (.safetensors)."""
    return save_tensors(model.state_dict(), metadata, path)


def save_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write named tensors and ``metadata`` (in the header) to ``path`` (.safetensors): under the entry's
    lock, fsynced, renamed into place. CheckpointError (one line) if the folder cannot be written."""
    from safetensors.torch import save_file

    path = _weights_path(path)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "trustkit_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **metadata}
    header = {METADATA_KEY: json.dumps(meta, default=str)}
    try:
        with entry_lock(path):
            with atomic_path(path, fsync=True) as tmp:
                save_file(tensors, str(tmp), metadata=header)
            _drop_legacy_metadata(path)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path} ({exc.strerror or exc}); set TRUSTKIT_HOME to a "
                              "writable folder (or pass --out)") from None
    return path


def _drop_legacy_metadata(path: Path) -> None:
    """Remove the old-format ``NAME.json`` of the weights just replaced: it describes weights that are gone."""
    legacy = metadata_path(path)
    try:
        if json.loads(legacy.read_text(encoding="utf-8")).get("format") == FORMAT:
            legacy.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # absent, or not ours: leave it


def _parse_metadata(text: str, where: str) -> dict[str, Any]:
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint metadata in {where} is corrupt ({exc}); delete it and retrain "
                              "with 'trustkit train'") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where} holds no trustkit checkpoint metadata; save the model with "
                              "trustkit.models.store.save_checkpoint (safetensors weights + a zoo architecture)")
    return meta


def _legacy_metadata(path: Path) -> dict[str, Any]:
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise CheckpointError(f"checkpoint {path} has no trustkit metadata (none in its header, no "
                              f"{meta_file.name} beside it); re-save the model with trustkit")
    try:
        text = meta_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint metadata {meta_file} is unreadable ({exc}); delete it and retrain "
                              "with 'trustkit train'") from None
    return _parse_metadata(text, str(meta_file))


MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit on the JSON header


def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is corrupt ({why}); delete it and retrain with 'trustkit train'")


def _read_bytes(path: Path, *, header_only: bool) -> tuple[dict[str, str], bytes]:
    """``(header metadata, file bytes)`` from ONE open of ``path``. A rename over the path while we read
    cannot mix two versions: the open file stays the version it was (safetensors' ``safe_open`` opens the
    path twice, once for the header and once to map the storage, and a writer can slip between them).
    With ``header_only`` the bytes are only the header's."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; check the path or train it with 'trustkit train'")
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise _corrupt(path, f"{len(prefix)} bytes, shorter than a safetensors header")
            size = int.from_bytes(prefix, "little")
            if size > MAX_HEADER_BYTES:
                raise _corrupt(path, f"header claims {size} bytes")
            head = handle.read(size)
            if len(head) < size:
                raise _corrupt(path, "truncated header")
            data = prefix + head if header_only else prefix + head + handle.read()
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path} ({exc.strerror or exc}); check its permissions") from None
    try:
        header = json.loads(head.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "header is not a JSON object")
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "header metadata is not a JSON object")
    return metadata, data


def _tensors_from_bytes(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    try:
        return load(data)
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise _corrupt(path, f"{type(exc).__name__}: {exc}") from None


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` of checkpoint ``path``, both from one open of the file, so a concurrent
    overwrite cannot pair one version's weights with another's metadata. CheckpointError if missing,
    corrupt or without metadata (old checkpoints: the sibling ``.json``)."""
    path = _weights_path(path)
    header, data = _read_bytes(path, header_only=False)
    tensors = _tensors_from_bytes(path, data)
    if METADATA_KEY in header:
        return tensors, _parse_metadata(header[METADATA_KEY], f"the header of {path}")
    return tensors, _legacy_metadata(path)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of checkpoint ``path`` (its header, else an old-format sibling .json); CheckpointError
    if it is missing or unreadable. Reads only the header, not the weights."""
    path = _weights_path(path)
    header, _ = _read_bytes(path, header_only=True)
    if METADATA_KEY in header:
        return _parse_metadata(header[METADATA_KEY], f"the header of {path}")
    return _legacy_metadata(path)


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file (no pickle involved), from one open of it; CheckpointError if missing
    or corrupt."""
    path = _weights_path(path)
    _, data = _read_bytes(path, header_only=False)
    return _tensors_from_bytes(path, data)


def checkpoint_exists(path: str | os.PathLike) -> bool:
    """True if checkpoint ``path`` is complete: the file has trustkit metadata in its header, or (old
    format) its .json sits beside it. A file that cannot be parsed counts as present, so loading it reports
    the corruption instead of a retrain silently replacing it; weights without any metadata (an old-format
    write interrupted before its JSON) count as absent."""
    path = _weights_path(path)
    if not path.is_file():
        return False
    if metadata_path(path).is_file():
        return True
    try:
        header, _ = _read_bytes(path, header_only=True)
    except CheckpointError:
        return True
    return METADATA_KEY in header


def list_checkpoints(prefix: str = "", folder: str | os.PathLike | None = None) -> list[Path]:
    """Complete checkpoints in ``folder`` (default: the store) whose names start with ``prefix``, sorted;
    old two-file checkpoints included, temporaries and lock files not."""
    folder = Path(folder) if folder is not None else store_dir()
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{prefix}*.safetensors") if not p.name.startswith(".")]
    return sorted(p for p in found if checkpoint_exists(p))
