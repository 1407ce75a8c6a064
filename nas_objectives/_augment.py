"""Batched data augmentation on the training device: random flips and random crops.

As in KellerJordan/cifar10-airbench (``batch_flip_lr``, ``batch_crop``), a whole batch is
augmented with a few tensor ops and no per-sample Python, so augmentation adds no host
sync and no loop over samples. Randomness comes from a ``torch.Generator`` on the data's
device, so a seed fixes every flip and every crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nas_objectives._data_errors import DatasetError
from nas_objectives.config import AUGMENTATIONS


def crop_pad(height: int, width: int) -> int:
    """Pixels a random crop may shift: 4 for images of 32 px and up, 2 from 28 px, else 1."""
    side = min(height, width)
    return 4 if side >= 32 else 2 if side >= 28 else 1


def check_augment(names: Sequence[str], input_shape: tuple[int, int, int]) -> tuple[str, ...]:
    """``names`` validated against the data, in the order they are applied.

    Raises:
        DatasetError: an unknown name, or augmentation asked of tabular features (or of
            images under 2 px a side, which a reflect pad cannot shift), naming
            ``dataset.augment``.
    """
    for name in names:
        if name not in AUGMENTATIONS:
            raise DatasetError(
                f"dataset.augment: unknown augmentation (known: {', '.join(AUGMENTATIONS)}) "
                f"(got {name!r})"
            )
    c, h, w = input_shape
    if names and min(h, w) < 2:
        what = f"tabular features ({c},)" if h == w == 1 else f"{h}x{w} images"
        raise DatasetError(
            f"dataset.augment: flip and crop need images, but this dataset holds {what}; "
            f"remove augment (got {list(names)!r})"
        )
    return tuple(a for a in AUGMENTATIONS if a in names)


def batch_flip_lr(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mirror a random half of the ``(N, C, H, W)`` batch ``x`` left to right."""
    # One draw per sample; torch.where over the whole batch keeps it one kernel, no sync.
    mask = torch.rand(len(x), device=x.device, generator=gen) < 0.5  # (N,)
    return torch.where(mask.view(-1, 1, 1, 1), x.flip(3), x)


def batch_crop(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift every image of ``x`` by up to ``pad`` pixels each way (reflect padding).

    The batch is padded once, then each sample's window is gathered with index grids
    (``arange`` plus the sample's offset): two ``gather`` calls for the whole batch.
    """
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")  # (N, C, H+2p, W+2p)
    # Offsets in [0, 2*pad]: the window's top-left corner in the padded image.
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=gen)
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    wp = w + 2 * pad
    out = padded.gather(2, rows.view(n, 1, h, 1).expand(n, c, h, wp))  # (N, C, H, W+2p)
    return out.gather(3, cols.view(n, 1, 1, w).expand(n, c, h, w))  # (N, C, H, W)


def augment_batch(x: torch.Tensor, names: Sequence[str], gen: torch.Generator) -> torch.Tensor:
    """``x`` with the augmentations ``names`` applied (validated by :func:`check_augment`)."""
    if "flip" in names:
        x = batch_flip_lr(x, gen)
    if "crop" in names:
        x = batch_crop(x, crop_pad(x.shape[2], x.shape[3]), gen)
    return x
