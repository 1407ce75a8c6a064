"""An on-disk cache of decoded image folders, shared by every process on the machine.

Decoding is the slow part of reading an image folder (PIL opens, decodes and resizes each
file). The decoded uint8 tensor is written once to ``<cache_dir>/<key>.npz`` and read back
by the next run, or by another worker on the same machine, in a fraction of the time
(``benchmarks/user_data.py`` measures it).

The key is a hash of everything the decoded tensor depends on: the folder, every image's
relative path, size and modification time, the requested ``image_size`` and ``channels``,
and a format version. Changing, adding or removing one image changes the key, so a stale
entry is never read. Entries are written to a temporary file and renamed into place, so a
reader never sees a half-written entry and two processes racing to write one are both
fine (the last rename wins, with identical contents).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Bump when the decoded layout changes, so old entries are ignored.
_FORMAT = 1

_logger = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$NAS_STUDY_CACHE_DIR``, else ``~/.cache/nas-study/decoded``."""
    return Path(os.environ.get("NAS_STUDY_CACHE_DIR") or "~/.cache/nas-study/decoded").expanduser()


def cache_key(
    root: Path, paths: Sequence[str], image_size: tuple[int, int] | None, channels: int
) -> str:
    """The entry's name: changes whenever any input of the decode changes."""
    h = hashlib.sha256(f"{_FORMAT}|{root.resolve()}|{image_size}|{channels}".encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"|{os.path.relpath(p, root)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:32]


def load(cache_dir: Path, key: str) -> np.ndarray | None:
    """The cached uint8 array, or None when there is none (or it cannot be read)."""
    path = cache_dir / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            x = f["x"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        # A damaged entry is only a cache miss: decode again and overwrite it.
        _logger.warning("ignoring unreadable decode cache %s (%s)", path, exc)
        return None
    return x if x.dtype == np.uint8 else None


def store(cache_dir: Path, key: str, x: np.ndarray) -> None:
    """Write ``x`` under ``key``; a cache that cannot be written is skipped with a warning."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{key}.", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as f:
                # Uncompressed: reading back is then a memcpy, which is the point.
                np.savez(f, x=x)
            os.replace(tmp, cache_dir / f"{key}.npz")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        _logger.warning(
            "cannot write the decode cache in %s (%s); going on without", cache_dir, exc
        )
