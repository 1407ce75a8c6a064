"""The export directory's file list and its manifest: names, checksums and verification.

Every file of an export but the manifest is listed in ``manifest.json`` with its size and
SHA-256; :func:`read_manifest` checks them all, so every reader refuses a damaged export.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

#: Version of the directory layout below; readers refuse newer versions.
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.pt"
ARCHITECTURE_FILE = "architecture.json"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
TORCHSCRIPT_FILE = "model.torchscript.pt"
ONNX_FILE = "model.onnx"
#: Files every export has, besides the manifest.
REQUIRED_FILES = (WEIGHTS_FILE, ARCHITECTURE_FILE, METRICS_FILE)
OPTIONAL_FILES = (TORCHSCRIPT_FILE, ONNX_FILE)


class ExportError(RuntimeError):
    """An export cannot be made as asked, or an export directory is missing, incomplete or
    tampered with. ``str()`` is one line naming the file (or option) and the problem."""


def file_entry(path: Path) -> dict[str, Any]:
    """The manifest entry of ``path``: its SHA-256 and size in bytes."""
    return {"sha256": _sha256(path), "bytes": path.stat().st_size}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(export_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` and check every file it lists (size and SHA-256).

    Raises:
        ExportError: the manifest is missing or malformed, of a newer format, lacks a
            required file, or a listed file is missing, truncated or modified.
    """
    root = Path(export_dir)
    if not root.is_dir():
        raise ExportError(f"{root}: no such export directory")
    manifest = read_json(root / MANIFEST_FILE, "manifest")
    path = root / MANIFEST_FILE
    if manifest.get("format") != "nas-study-export":
        raise ExportError(f"{path}: not a nas-study export manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ExportError(
            f"{path}: format version {version!r} is not supported (this nas-study reads up to "
            f"{FORMAT_VERSION}); upgrade nas-study"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ExportError(f"{path}: malformed: 'files' must be a table of file checksums")
    for name in REQUIRED_FILES:
        if name not in files:
            raise ExportError(f"{path}: lists no {name}; the export is incomplete")
    dataset = manifest.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise ExportError(f"{path}: malformed: 'dataset' must name the dataset")
    for name, entry in files.items():
        _check_file(root, name, entry, path)
    return manifest


def _check_file(root: Path, name: Any, entry: Any, manifest_path: Path) -> None:
    if (
        not isinstance(name, str)
        or Path(name).name != name  # nothing outside the directory
        or not isinstance(entry, dict)
        or not isinstance(entry.get("sha256"), str)
        or not isinstance(entry.get("bytes"), int)
    ):
        raise ExportError(f"{manifest_path}: malformed entry for file {name!r}")
    file = root / name
    if not file.is_file():
        raise ExportError(f"{file}: missing (listed in {MANIFEST_FILE})")
    size = file.stat().st_size
    if size != entry["bytes"]:
        raise ExportError(
            f"{file}: {'truncated' if size < entry['bytes'] else 'changed'}: "
            f"{size} bytes, the manifest says {entry['bytes']}"
        )
    if _sha256(file) != entry["sha256"]:
        raise ExportError(f"{file}: SHA-256 mismatch: the file was modified after export")


def read_json(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path`` (the ``what`` of an export, for messages).

    Raises:
        ExportError: ``path`` is missing, unreadable, not JSON or not a JSON object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ExportError(
            f"{path}: missing; not an export directory, or an incomplete one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: cannot read the {what}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportError(f"{path}: the {what} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: the {what} must be a JSON object")
    return data
