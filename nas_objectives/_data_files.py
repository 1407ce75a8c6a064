"""The user's own data: an image folder, a tensor file or a CSV table.

Every reader returns :class:`RawData`: float ``(N, C, H, W)`` features (tabular ``(N, F)``
data as ``(N, F, 1, 1)``, which the MLP flattens), int64 labels in ``0..K-1``, the class
names, and whichever validation/test splits the files provide. Splitting and normalising
are :mod:`nas_objectives.data`'s job. Every problem is one line naming the file, the
study-file field and the value.
"""

from __future__ import annotations

import csv
import importlib
import math
import os
import zipfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas_objectives import _decode_cache
from nas_objectives._data_errors import DatasetError, data_error
from nas_objectives._decode_cache import default_cache_dir
from nas_objectives._errors import first_line

TENSOR_SUFFIXES = (".npz", ".pt", ".safetensors")


@dataclass(frozen=True)
class RawData:
    """Unnormalised splits as read; ``None`` where the files do not provide the split."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    classes: tuple[str, ...]
    tabular: bool = False
    #: What one stored unit of ``x`` is on the statistics' scale (1/255 for uint8 images).
    scale: float = 1.0


# -- image folders -------------------------------------------------------------------------


def read_image_folder(
    path: Path,
    *,
    test_path: Path | None = None,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> RawData:
    """torchvision's ``ImageFolder`` layout (``path/<class>/<image>``), decoded once.

    Images become uint8 ``(N, C, H, W)``. The decode runs on threads over every core and
    its result is cached on disk in ``cache_dir`` (:mod:`nas_objectives._decode_cache`).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    x, y, classes, channels = _decode_folder(path, "dataset.path", image_size, channels, cache)
    x_test = y_test = None
    if test_path is not None:
        x_test, y_test_raw, test_classes, _ = _decode_folder(
            test_path, "dataset.test_path", image_size, channels, cache
        )
        unknown = sorted(set(test_classes) - set(classes))
        if unknown:
            raise data_error(
                test_path, "dataset.test_path", "class folders missing from dataset.path", unknown
            )
        # Map test labels by class name: the test folder may lack some classes.
        index = torch.tensor([classes.index(c) for c in test_classes], dtype=torch.long)
        y_test = index[y_test_raw]
        if x_test.shape[1:] != x.shape[1:]:
            raise data_error(
                test_path,
                "dataset.image_size",
                f"test images are {tuple(x_test.shape[1:])}, training images "
                f"{tuple(x.shape[1:])}; set image_size",
                None,
            )
    _need_two_classes(path, "dataset.path", classes)
    return RawData(x, y, None, None, x_test, y_test, classes, scale=1 / 255)


def _decode_folder(
    root: Path,
    field: str,
    image_size: tuple[int, int] | None,
    channels: int | None,
    cache_dir: Path,
) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...], int]:
    from PIL import Image
    from torchvision.datasets import ImageFolder

    if not root.is_dir():
        raise data_error(root, field, "no such folder", str(root))
    try:
        # torchvision finds the classes (sorted folder names) and the image files; our
        # loader keeps the image's own mode so grayscale stays one channel.
        folder = ImageFolder(str(root), loader=_open_image)
    except (FileNotFoundError, OSError) as exc:
        raise data_error(root, field, first_line(exc), str(root)) from None
    paths = [p for p, _ in folder.samples]
    if channels is None:
        first = _open_image(paths[0])
        channels = 1 if first.mode in ("1", "L", "I", "I;16", "F") else 3
    mode = "L" if channels == 1 else "RGB"
    y = torch.tensor(folder.targets, dtype=torch.long)
    key = _decode_cache.cache_key(root, paths, image_size, channels)
    cached = _decode_cache.load(cache_dir, key)
    if cached is not None and len(cached) == len(paths):
        return torch.from_numpy(cached), y, tuple(folder.classes), channels

    def decode(p: str) -> np.ndarray:
        try:
            img = folder.loader(p).convert(mode)
        except OSError as exc:  # PIL: unidentified, truncated or corrupt image
            raise data_error(p, field, f"unreadable image ({first_line(exc)})") from None
        if image_size is not None:
            img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
        a = np.asarray(img, dtype=np.uint8)
        return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

    # PIL releases the GIL while decoding, so threads decode in parallel on every core.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        arrays = list(pool.map(decode, paths))
    shape = arrays[0].shape
    for p, a in zip(paths, arrays, strict=True):
        if a.shape != shape:
            raise data_error(
                p,
                "dataset.image_size",
                f"images differ in size ({paths[0]} is {shape[2]}x{shape[1]}, this one "
                f"{a.shape[2]}x{a.shape[1]}); set image_size = [height, width]",
                None,
            )
    x = np.stack(arrays)
    _decode_cache.store(cache_dir, key, x)
    return torch.from_numpy(x), y, tuple(folder.classes), channels


def _open_image(path: str) -> Any:
    from PIL import Image

    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()  # decode now, while the file is open; raises on a truncated file
    return img


# -- tensor files --------------------------------------------------------------------------


def read_tensor_file(path: Path) -> RawData:
    """``x``/``y`` (and optional ``x_val``/``y_val``, ``x_test``/``y_test``) from a file."""
    return raw_from_arrays(_read_arrays(path), path, "dataset.path")


def raw_from_arrays(
    arrays: Mapping[str, np.ndarray], where: object, field: str | None = None
) -> RawData:
    """``x``/``y`` arrays, and optional ``x_val``/``y_val`` and ``x_test``/``y_test``, checked
    and mapped into :class:`RawData`: what a tensor file and in-memory arrays share.

    ``x`` is ``(N, C, H, W)`` or tabular ``(N, F)``; ``y`` holds whole-number labels, or
    (in memory only) strings, mapped to ``0..K-1`` in sorted order (numbers as numbers) by
    one mapping over all splits. Messages start ``where: field: `` for a file
    (``field="dataset.path"``), or ``where: `` for in-memory arrays (``field=None``), whose
    messages then name the array, as ``arrays: y: labels must be whole numbers``.

    Raises:
        DatasetError: a split with only one of its arrays, arrays of other shapes, lengths
            that differ, non-numeric or non-finite features, labels that are not whole
            numbers, or a single class.
    """

    def fail(problem: str, value: Any = ...) -> DatasetError:
        got = "" if value is ... else f" (got {value!r})"
        return DatasetError(f"{where}: {field + ': ' if field else ''}{problem}{got}")

    present: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for suffix in ("", "_val", "_test"):
        xk, yk = f"x{suffix}", f"y{suffix}"
        xs, ys = arrays.get(xk), arrays.get(yk)
        if xs is None and ys is None and suffix:
            continue
        if xs is None or ys is None:
            missing, given = (xk, yk) if xs is None else (yk, xk)
            if field is not None:
                raise fail(f"no array {missing!r} (arrays: {', '.join(sorted(arrays))})")
            raise fail(f"{missing}: missing, but {given} is given")
        x, y = _features(fail, xk, xs), _labels(fail, yk, ys, text=field is None)
        if len(x) != len(y):
            raise fail(f"{xk} has {len(x)} rows but {yk} has {len(y)}")
        present[suffix] = (x, y)
    shapes = {f"x{k}": tuple(v[0].shape[1:]) for k, v in present.items()}
    if len(set(shapes.values())) > 1:
        raise fail("x arrays differ in shape per sample", shapes)
    labels = [y for _, y in present.values()]
    if all(y.dtype.kind not in "USO" for y in labels):
        values = np.unique(np.concatenate(labels))
        classes = tuple(str(v) for v in values)
        index = [np.searchsorted(values, y).astype(np.int64) for y in labels]
    else:  # class names as they are
        as_text = [[str(v) for v in y] for y in labels]
        classes = _sorted_classes([v for y in as_text for v in y])
        position = {c: i for i, c in enumerate(classes)}
        index = [np.asarray([position[v] for v in y], dtype=np.int64) for y in as_text]
    if len(classes) < 2:
        raise fail("y: a classifier needs at least 2 classes", list(classes))
    features, scale = feature_tensors([x for x, _ in present.values()])
    split = {k: (x, torch.from_numpy(i)) for k, x, i in zip(present, features, index, strict=True)}
    val, test = split.get("_val"), split.get("_test")
    return RawData(
        split[""][0],
        split[""][1],
        val[0] if val else None,
        val[1] if val else None,
        test[0] if test else None,
        test[1] if test else None,
        classes,
        tabular=present[""][0].ndim == 2,
        scale=scale,
    )


def feature_tensors(arrays: list[np.ndarray]) -> tuple[list[torch.Tensor], float]:
    """Checked feature arrays as tensors, and the scale their statistics are taken at.

    Images that are all uint8 stay uint8 (a quarter of float32's memory on the device)
    and keep the 0-255 scale they were stored at; anything else becomes float32. Tabular
    ``(N, F)`` becomes ``(N, F, 1, 1)``.
    """
    keep_uint8 = all(a.dtype == np.uint8 and a.ndim == 4 for a in arrays)
    dtype = np.uint8 if keep_uint8 else np.float32
    out = []
    for a in arrays:
        x = torch.from_numpy(np.ascontiguousarray(a, dtype=dtype))
        out.append(x.reshape(*x.shape, 1, 1) if x.ndim == 2 else x)
    return out, 1.0


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise data_error(path, "dataset.path", "no such file", str(path))
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        if suffix == ".pt":
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(obj, Mapping):
                kind = type(obj).__name__
                raise data_error(path, "dataset.path", "a .pt file must hold a dict", kind)
            return {str(k): _as_array(path, str(k), v) for k, v in obj.items()}
        if suffix == ".safetensors":
            try:
                st = importlib.import_module("safetensors.numpy")
            except ImportError:
                raise data_error(
                    path, "dataset.path", "reading .safetensors needs the safetensors package"
                ) from None
            try:
                return dict(st.load_file(str(path)))
            except Exception as exc:  # SafetensorError derives from Exception only
                raise data_error(
                    path, "dataset.path", f"unreadable file ({first_line(exc)})"
                ) from None
    except DatasetError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise data_error(path, "dataset.path", f"unreadable file ({first_line(exc)})") from None
    raise data_error(
        path, "dataset.path", f"unknown file type; use {', '.join(TENSOR_SUFFIXES)}", suffix
    )


def _as_array(path: Path, key: str, value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise data_error(path, "dataset.path", f"{key!r} is not a tensor", type(value).__name__)


def _features(fail: Callable[..., DatasetError], key: str, x: np.ndarray) -> np.ndarray:
    if x.ndim not in (2, 4):
        raise fail(f"{key} must be (N, C, H, W) or (N, F)", tuple(x.shape))
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise fail(f"{key} must be numeric", str(x.dtype))
    if not np.isfinite(x).all():
        raise fail(f"{key} holds NaN or infinite values")
    return x


def _labels(fail: Callable[..., DatasetError], key: str, y: np.ndarray, text: bool) -> np.ndarray:
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise fail(f"{key} must be (N,)", tuple(y.shape))
    if text and y.dtype.kind in "USO":
        return y  # strings are class names as they are
    if y.dtype == np.bool_ or np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64)
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if not bad.any():
            return y.astype(np.int64)
        raise fail(f"{key}: labels must be whole numbers", float(y[bad][0]))
    raise fail(f"{key}: labels must be whole numbers", str(y.dtype))


# -- CSV -----------------------------------------------------------------------------------


def read_csv(path: Path, label: str) -> RawData:
    """A table with a header row: the ``label`` column is the class, the rest features."""
    if not path.is_file():
        raise data_error(path, "dataset.path", "no such file", str(path))
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise data_error(path, "dataset.path", f"unreadable CSV ({first_line(exc)})") from None
    if not rows:
        raise data_error(path, "dataset.path", "empty CSV: no header row")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise data_error(
            path, "dataset.label", f"no such column (columns: {', '.join(header)})", label
        )
    li = header.index(label)
    features, labels = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise data_error(
                path, f"line {line}", f"{len(row)} cells, the header has {len(header)}", None
            )
        values = []
        for j, cell in enumerate(row):
            if j == li:
                continue
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise data_error(
                    path,
                    f"column {header[j]!r}, line {line}",
                    f"not a number; every column but dataset.label = {label!r} must be numeric",
                    cell,
                )
            values.append(v)
        features.append(values)
        labels.append(row[li].strip())
    if not labels:
        raise data_error(path, "dataset.path", "no data rows under the header")
    classes = _sorted_classes(labels)
    _need_two_classes(path, "dataset.label", classes)
    index = {c: i for i, c in enumerate(classes)}
    x = torch.tensor(features, dtype=torch.float32).reshape(len(labels), -1, 1, 1)
    y = torch.tensor([index[v] for v in labels], dtype=torch.long)
    return RawData(x, y, None, None, None, None, classes, tabular=True)


def _sorted_classes(labels: list[str]) -> tuple[str, ...]:
    unique = set(labels)
    try:  # numeric labels sort as numbers (2 before 10), others as text
        return tuple(sorted(unique, key=float))
    except ValueError:
        return tuple(sorted(unique))


def _need_two_classes(path: Path, field: str, classes: tuple[str, ...]) -> None:
    if len(classes) < 2:
        raise data_error(path, field, "a classifier needs at least 2 classes", list(classes))
