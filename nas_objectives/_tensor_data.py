"""Splits as stored for training: uint8 images on the device, normalised per batch.

Images stay in the compact form they were decoded to (uint8, one byte a pixel) and are
turned into normalised float32 one batch at a time, by one fused multiply-add
(``x * a + b`` with per-channel ``a = scale / std`` and ``b = -mean / std``). That keeps a
dataset 4x smaller on the device than float32 (CIFAR-10's 60,000 images: 184 MB instead
of 737 MB) for a cost that is one elementwise kernel per batch. Tabular and float data go
through the same path, at scale 1.

When the splits do not fit a device-memory budget, the features stay in pinned host
memory and :mod:`nas_objectives._feed` copies each batch to the device asynchronously,
one batch ahead. Labels are small and always live on the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

#: The default share of the device's free memory a dataset's features may take before they
#: are kept in pinned host memory instead (``--device-memory-budget``).
DEFAULT_MEMORY_BUDGET = 0.5

# Statistics are summed over chunks of this many samples, so a uint8 dataset is never
# converted to float32 all at once.
_STATS_CHUNK = 4096


@dataclass(frozen=True)
class TensorData:
    """The splits of one dataset, ready for training on one device.

    ``x_*`` hold the features as stored: ``(N, C, H, W)`` uint8 for images, float32 for
    tensor files and tables (tabular data as ``(N, F, 1, 1)``). :meth:`normalize` turns a
    batch of them into the float32 a model takes. ``y_*`` are int64 class indices, always
    on :attr:`device`. ``mean`` and ``std`` are the per-channel statistics of the training
    split, on the scale a deployed model's caller sees (``x * scale``: digits and images
    0 to 1; tensor and CSV files as stored). ``classes`` names class index ``i``.

    ``x_*`` live on :attr:`device` unless the dataset is bigger than the memory budget it
    was loaded with; then they are in (pinned) host memory and :attr:`placement` is
    ``"host"``.
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    classes: tuple[str, ...] = ()
    #: What one stored unit is on the ``mean``/``std`` scale (1/255 for uint8 images).
    scale: float = 1.0
    #: ``"device"``: the features are on :attr:`device`; ``"host"``: they did not fit the
    #: memory budget and stay in host memory (pinned when the device is a GPU).
    placement: str = "device"
    _affine: tuple[torch.Tensor, torch.Tensor] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        c = self.x_train.shape[1]
        mean = torch.tensor(self.mean or (0.0,) * c, dtype=torch.float32)
        std = torch.tensor(self.std or (1.0,) * c, dtype=torch.float32)
        a = (self.scale / std).reshape(1, c, 1, 1).to(self.device)
        b = (-mean / std).reshape(1, c, 1, 1).to(self.device)
        object.__setattr__(self, "_affine", (a, b))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def device(self) -> torch.device:
        """Where training runs (the labels' device)."""
        return self.y_train.device

    @property
    def nbytes(self) -> int:
        """Bytes the features of all three splits take as stored."""
        return sum(x.numel() * x.element_size() for x in (self.x_train, self.x_val, self.x_test))

    def describe(self) -> dict[str, object]:
        """What a study records of its data, JSON-ready: enough to check that a later
        read (a worker elsewhere, ``export``, ``evaluate``) sees the same classes, split
        and preprocessing."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            "split_sizes": [len(self.y_train), len(self.y_val), len(self.y_test)],
            "input_shape": list(self.input_shape),
            "dtype": str(self.x_train.dtype).removeprefix("torch."),
            "mean": list(self.mean),
            "std": list(self.std),
            "scale": self.scale,
        }

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of stored features as normalised float32 on :attr:`device`.

        Example:
            >>> from nas_objectives import load_dataset
            >>> d = load_dataset("digits")
            >>> d.x_train.dtype, d.normalize(d.x_train[:4]).dtype
            (torch.uint8, torch.float32)
        """
        a, b = self._affine  # type: ignore[misc]
        # Pinned host memory copies without blocking; device memory does not move.
        x = x.to(self.device, non_blocking=True)
        return torch.addcmul(b, x.to(torch.float32), a)


def make_tensor_data(
    name: str,
    splits: tuple[torch.Tensor, ...],
    classes: tuple[str, ...],
    device: torch.device,
    *,
    scale: float = 1.0,
    memory_budget: float | None = None,
) -> TensorData:
    """Compute the training split's statistics and place ``splits`` for ``device``.

    Args:
        splits: ``x_train, y_train, x_val, y_val, x_test, y_test`` on the host, features
            as stored (uint8 stays uint8).
        scale: What one stored unit is on the statistics' scale.
        memory_budget: The share of the device's free memory (0 to 1), or with a value
            above 1 the bytes, the features may take there; beyond it they stay in pinned
            host memory. ``None``: :data:`DEFAULT_MEMORY_BUDGET`. On the CPU the host is
            the device, so only a budget of 0 keeps them "on the host" (which exercises the
            same batch-copy path).
    """
    x_train, y_train, x_val, y_val, x_test, y_test = splits
    mean, std = channel_stats(x_train, scale)
    features = [x.contiguous() for x in (x_train, x_val, x_test)]
    nbytes = sum(x.numel() * x.element_size() for x in features)
    placement = "device" if fits(nbytes, device, memory_budget) else "host"
    if placement == "device":
        features = [x.to(device) for x in features]
    elif device.type == "cuda":
        features = [x.pin_memory() for x in features]
    labels = [y.to(device=device, dtype=torch.long) for y in (y_train, y_val, y_test)]
    return TensorData(
        name=name,
        x_train=features[0],
        y_train=labels[0],
        x_val=features[1],
        y_val=labels[1],
        x_test=features[2],
        y_test=labels[2],
        num_classes=len(classes),
        mean=mean,
        std=std,
        classes=classes,
        scale=scale,
        placement=placement,
    )


def fits(nbytes: int, device: torch.device, memory_budget: float | None) -> bool:
    """Whether ``nbytes`` of features fit ``device`` under ``memory_budget``."""
    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else float(memory_budget)
    if budget <= 0:
        return False
    if device.type != "cuda":
        return True  # host memory is the device's memory
    if budget > 1:
        return nbytes <= budget
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= budget * free


def channel_stats(x: torch.Tensor, scale: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of ``x * scale``, summed in float64 chunks."""
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    squares = torch.zeros(c, dtype=torch.float64)
    for i in range(0, len(x), _STATS_CHUNK):
        chunk = x[i : i + _STATS_CHUNK].to(torch.float64) * scale
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    n = x.numel() // c
    mean = total / n
    # The unbiased estimate, as torch.std gives, floored so a constant channel stays finite.
    var = (squares - n * mean.square()) / max(1, n - 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-6)
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)
