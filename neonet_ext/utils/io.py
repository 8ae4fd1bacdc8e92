"""Atomic file writing: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write", "file_sha1", "input_sha1"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _suffixes(path: Path) -> str:
    # keep ".nii.gz" whole so writers that pick a format by suffix still do
    return "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    The temporary file keeps the target's suffix (``.nii.gz``, ``.png``...), so code
    that chooses a format from the file name writes the same bytes.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{_suffixes(target)}", dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp makes owner-only files; the result should have the usual permissions
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically; return ``path``."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def file_sha1(path: str | os.PathLike) -> str:
    """Hex SHA-1 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_sha1(path: str | os.PathLike) -> str:
    """Hex SHA-1 of an input: a file's bytes, or for a folder (a DICOM series) the names and bytes
    of the files directly in it, hidden ones aside, in name order."""
    path = Path(path)
    if not path.is_dir():
        return file_sha1(path)
    digest = hashlib.sha1()
    for entry in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(f"{entry.name}:{file_sha1(entry)};".encode())
    return digest.hexdigest()
