"""Atomic file output: nothing half-written is ever left where a result is expected, and a command's
files appear all together or not at all (:func:`staged_outputs`)."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

NEW_FILE_MODE = 0o666  # reduced by the umask, as for any file a program creates


def _temporary_beside(target: Path) -> Path:
    """Create an empty temporary file next to ``target`` with the umask's permissions (not mkstemp's 0600)."""
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp{''.join(target.suffixes)}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
            return tmp
        except FileExistsError:
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``, on error removed."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder, not a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temporary_beside(target)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def check_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as an output folder, checked before any work: not a file, and writable (or creatable)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"output folder {folder} exists and is not a folder")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise ValueError(f"cannot create the output folder {folder}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to the output folder {folder}: {existing} is not writable")
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """``path`` as an output file, checked before any work: not a folder, in a writable (or creatable) folder."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"output {target} is a folder; give a file name")
    check_output_folder(target.parent)
    return target


@contextlib.contextmanager
def staged_outputs(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder beside ``out_dir``: write a command's files there; on success they are
    moved into ``out_dir`` (created if needed) together, on error none of them is."""
    target = check_output_folder(out_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".staged", dir=target.parent))
    try:
        yield staging
        files = sorted(p for p in staging.rglob("*") if not p.is_dir())
        for destination in {target / p.relative_to(staging) for p in files}:
            if destination.is_dir():
                raise IsADirectoryError(f"cannot write {destination}: a folder of that name is in the way")
        target.mkdir(parents=True, exist_ok=True)
        for source in files:
            destination = target / source.relative_to(staging)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_json(data: Any, path: str | os.PathLike) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2))


def save_npy(array: np.ndarray, path: str | os.PathLike) -> None:
    """Write a .npy file atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array)
