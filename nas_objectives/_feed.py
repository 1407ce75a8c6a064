"""Training batches, from device-resident features or from pinned host memory.

Device-resident data (the common case) is index-sliced on the device: a ``randperm`` made
there, one gather, one normalising multiply-add, no host sync.

Host-resident data (bigger than the device-memory budget) is gathered on the host into one
of two pinned buffers and copied to the device on a side stream, one batch ahead: while the
device computes on batch *i*, the host gathers batch *i + 1* and its copy is in flight. The
buffers alternate, and a buffer is refilled only after the copy out of it has finished
(its event), so a copy is never overwritten in flight. Without CUDA the same code runs with
plain host tensors and synchronous copies, which is how the CPU tests cover this path.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from nas_objectives._tensor_data import TensorData


def batch_count(n: int, batch_size: int) -> int:
    """Steps per epoch: the ragged last batch is dropped (a batch of one breaks BatchNorm,
    and the permutation changes every epoch, so every sample is still seen)."""
    return max(1, n // batch_size)


class BatchFeeder:
    """Yields ``(x, y)`` training batches of ``data``: x normalised float32 on the device.

    Args:
        data: The dataset; its :attr:`~TensorData.placement` picks the path.
        batch_size: Samples per batch (at most the training split's size).
        seed: Seeds the batch order. The order is drawn on the features' device, so one
            seed gives one order for each placement.
        min_steps: At least this many batches per epoch: a small dataset's epoch goes on
            into a fresh permutation (so a sample is seen at most once more than another).
    """

    def __init__(self, data: TensorData, batch_size: int, seed: int, min_steps: int = 0) -> None:
        self.data = data
        self.batch_size = min(batch_size, len(data.y_train))
        self.steps = max(batch_count(len(data.y_train), self.batch_size), min_steps)
        self._host = data.placement == "host"
        self._gen = torch.Generator(device=data.x_train.device).manual_seed(seed)
        self._cuda = self._host and data.device.type == "cuda"
        if self._host:
            shape = (self.batch_size, *data.x_train.shape[1:])
            self._buffers = [
                torch.empty(shape, dtype=data.x_train.dtype, pin_memory=self._cuda)
                for _ in range(2)
            ]
            self._stream = torch.cuda.Stream(data.device) if self._cuda else None
            self._events: list[torch.cuda.Event | None] = [None, None]

    def epoch(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's batches, in a fresh random order."""
        x, y = self.data.x_train, self.data.y_train
        bs = self.batch_size
        per_pass = batch_count(len(y), bs)
        # Enough permutations for the epoch's steps, each cut to whole batches.
        perms = [
            torch.randperm(len(y), device=x.device, generator=self._gen)[: per_pass * bs]
            for _ in range(-(-self.steps // per_pass))
        ]
        perm = perms[0] if len(perms) == 1 else torch.cat(perms)
        if not self._host:
            for i in range(self.steps):
                idx = perm[i * bs : (i + 1) * bs]
                yield self.data.normalize(x[idx]), y[idx]
            return
        # Labels live on the device: move the whole permutation there once per epoch.
        perm_dev = perm.to(self.data.device, non_blocking=True)
        pending = self._copy(perm[:bs], 0)
        for i in range(self.steps):
            current = pending
            if i + 1 < self.steps:  # start the next batch's copy before this one computes
                pending = self._copy(perm[(i + 1) * bs : (i + 2) * bs], (i + 1) % 2)
            if self._cuda:
                event = self._events[i % 2]
                assert event is not None  # recorded by the _copy that filled this slot
                torch.cuda.current_stream(self.data.device).wait_event(event)
                current.record_stream(torch.cuda.current_stream(self.data.device))
            yield self.data.normalize(current), y[perm_dev[i * bs : (i + 1) * bs]]

    def _copy(self, idx: torch.Tensor, slot: int) -> torch.Tensor:
        """Gather rows ``idx`` into pinned buffer ``slot`` and start their copy to the device."""
        buffer, event = self._buffers[slot], self._events[slot]
        if event is not None:
            event.synchronize()  # the copy out of this buffer two batches ago has finished
        torch.index_select(self.data.x_train, 0, idx, out=buffer)
        if self._stream is None:
            return buffer  # on the CPU the buffer already is "on the device"
        with torch.cuda.stream(self._stream):
            on_device = buffer.to(self.data.device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self._stream)
        self._events[slot] = done
        return on_device
