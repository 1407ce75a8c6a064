"""DARTS over a cell space: the supernet, its bilevel training, and the derived cell.

Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search", ICLR 2019
(arXiv:1806.09055), on NAS-Bench-201's skeleton as in its DARTS baselines (Dong and Yang,
ICLR 2020). Every edge is a :class:`MixedOp`, the ``softmax(alpha)``-weighted sum of all its
ops; the network weights learn on one half of the training split (SGD), ``alpha`` on the
other (Adam, DARTS' lr 3e-4, betas (0.5, 0.999), weight decay 1e-3). The validation split
is never read, so the trials that later score the derived cells are scored on unseen data.

The architecture loss adds ``lambda * cost``: the expected cost of the cell under
``softmax(alpha)``, normalised to [0, 1] between the cheapest and the dearest cell, so
one ``lambda`` means the same in any space. The expected cost is exact for one-hot alpha.

Collapse guard: DARTS drifts to parameter-free ops (skip connections, pooling), which win
the weight race early (on NAS-Bench-201, DARTS-V1 finds 54.3% CIFAR-10 cells against a
94.37% optimum). The guard here is beta-DARTS' Beta-Decay regulariser (Ye et al., CVPR
2022, arXiv:2203.01665): ``mean over edges of logsumexp(alpha)``, weighted by a ramp from 0
to ``beta_weight`` over the search, which keeps the softmax(alpha) of every edge from
concentrating early on the ops the weights favour first.

No storage and no Optuna here: plain tensors in, a cell out (``studies.oneshot`` does the
study part).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from nas_objectives._augment import augment_batch
from nas_objectives._cell_graph import cell_edges
from nas_objectives._cell_ops import make_op
from nas_objectives.cell import CellSkeleton, EdgeCosts, edge_costs
from nas_objectives.data import TensorData
from nas_objectives.space import Layout
from nas_objectives.train import NonFiniteLossError


@dataclass(frozen=True)
class SearchSettings:
    """One DARTS search. The weight optimizer is DARTS' (SGD, momentum 0.9, lr 0.025
    cosine to 0.001, weight decay 3e-4, gradient clip 5); the alpha optimizer its Adam."""

    epochs: int = 10
    batch_size: int = 64
    cost_weight: float = 0.0  # lambda
    cost_kind: str = "params"
    second_order: bool = False
    guard: bool = True
    beta_weight: float = 1.0
    seed: int = 0
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    augment: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        """E.g. ``darts-1st+beta``: the order of the gradient and the guard."""
        return f"darts-{'2nd' if self.second_order else '1st'}" + ("+beta" if self.guard else "")


@dataclass
class SearchResult:
    """The derived cell, the final ``softmax(alpha)`` per edge, and how the search went."""

    cell: tuple[str, ...]
    probabilities: list[list[float]]
    expected_cost: float
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


# --------------------------------------------------------------------------- supernet


class MixedOp(nn.Module):
    """Every op of an edge at once: ``sum_k w_k * op_k(x)``."""

    def __init__(self, ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.names = tuple(ops)
        self.ops = nn.ModuleList(make_op(op, channels, affine=False) for op in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:  # weights: (K,)
        out: torch.Tensor | None = None
        for name, op, w in zip(self.names, self.ops, weights, strict=True):
            if name == "none":  # w * 0: skip the work, the sum is the same
                continue
            term = w * op(x)
            out = term if out is None else out + term
        return x.mul(0.0) if out is None else out


class MixedCell(nn.Module):
    """A cell whose every edge is a :class:`MixedOp`; ``weights`` is ``(edges, ops)``."""

    def __init__(self, ops: Sequence[str], channels: int, nodes: int) -> None:
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(MixedOp(ops, channels) for _ in cell_edges(nodes))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [x]
        k = 0
        for i in range(1, self.nodes):
            total = self.edges[k](states[0], weights[k])
            for j in range(1, i):
                total = total + self.edges[k + j](states[j], weights[k + j])
            k += i
            states.append(total)
        return states[-1]


class Supernet(nn.Module):
    """NAS-Bench-201's skeleton with mixed cells, and the architecture logits ``alpha``."""

    def __init__(self, layout: Layout, ops: Sequence[str]) -> None:
        super().__init__()
        self.ops = tuple(ops)
        nodes = layout.nodes
        self.net = CellSkeleton(
            layout.input_shape[0],
            layout.widths[0],
            layout.cells_per_stage,
            layout.num_classes,
            lambda c: MixedCell(ops, c, nodes),
        )
        # DARTS starts every op equal, up to a small random tie-break.
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(cell_edges(nodes)), len(ops)))

    def weights(self) -> list[nn.Parameter]:
        """The network weights (everything but ``alpha``)."""
        return list(self.net.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, F.softmax(self.alpha, dim=-1))


def expected_cost(alpha: torch.Tensor, costs: EdgeCosts) -> torch.Tensor:
    """``fixed + sum_edges sum_ops softmax(alpha) * cost``: the network's expected cost."""
    table = torch.tensor(costs.per_op, dtype=alpha.dtype, device=alpha.device)
    return costs.fixed + (F.softmax(alpha, dim=-1) * table).sum()


def normalised_cost(alpha: torch.Tensor, costs: EdgeCosts) -> torch.Tensor:
    """The expected cost of the edges, mapped to [0, 1] from the cheapest to the dearest
    cell (0 where every cell costs the same)."""
    table = torch.tensor(costs.per_op, dtype=alpha.dtype, device=alpha.device)
    lo, hi = table.min(1).values.sum(), table.max(1).values.sum()
    span = float(hi - lo)
    if span <= 0:
        return alpha.sum() * 0.0
    return ((F.softmax(alpha, dim=-1) * table).sum() - lo) / span


def discretise(alpha: torch.Tensor, ops: Sequence[str]) -> tuple[str, ...]:
    """Each edge's strongest op, never ``none`` unless ``none`` is all there is."""
    masked = alpha.detach().clone()
    if any(op != "none" for op in ops):
        for k, op in enumerate(ops):
            if op == "none":
                masked[:, k] = -math.inf
    return tuple(ops[int(i)] for i in masked.argmax(1).tolist())


# --------------------------------------------------------------------------- search


def _halves(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS' ``train_portion = 0.5``: a seeded split of the training split's indices."""
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=gen).to(device)
    return perm[: n // 2], perm[n // 2 :]


class _Batches:
    """Index-slice batches of one half of the training split, normalised on the device
    (and augmented there when the study augments)."""

    def __init__(self, data: TensorData, idx: torch.Tensor, s: SearchSettings) -> None:
        self.data, self.idx, self.augment = data, idx, s.augment
        self.gen = torch.Generator(device=idx.device).manual_seed(s.seed)
        self.aug_gen = torch.Generator(device=data.device).manual_seed(s.seed + 1)

    def epoch(self, bs: int, steps: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order = self.idx[torch.randperm(len(self.idx), device=self.idx.device, generator=self.gen)]
        out = []
        for i in range(steps):
            b = order[i * bs : (i + 1) * bs]
            x = self.data.normalize(self.data.x_train[b])
            if self.augment:
                x = augment_batch(x, self.augment, self.aug_gen)
            out.append((x, self.data.y_train[b.to(self.data.device)]))
        return out


def search(
    layout: Layout,
    ops: Sequence[str],
    data: TensorData,
    settings: SearchSettings,
    *,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> SearchResult:
    """Run one DARTS search of ``layout``'s skeleton (width, cells per stage, nodes) over
    cells of ``ops``, on ``data``'s training split only.

    Raises:
        NonFiniteLossError: a loss became NaN or infinite (the search cannot go on).
    """
    device = data.device
    s = settings
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(s.seed)
        model = Supernet(layout, ops).to(device).train()
        costs = edge_costs(layout, ops, s.cost_kind)
        w_idx, a_idx = _halves(len(data.y_train), s.seed, data.x_train.device)
        w_batches, a_batches = _Batches(data, w_idx, s), _Batches(data, a_idx, s)
        bs = max(1, min(s.batch_size, len(w_idx), len(a_idx)))
        steps = max(1, min(len(w_idx), len(a_idx)) // bs)
        w_opt = torch.optim.SGD(
            model.weights(), lr=s.w_lr, momentum=s.w_momentum, weight_decay=s.w_weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            w_opt, T_max=s.epochs * steps, eta_min=s.w_lr_min
        )
        a_opt = torch.optim.Adam(
            [model.alpha], lr=s.alpha_lr, betas=s.alpha_betas, weight_decay=s.alpha_weight_decay
        )
        result = SearchResult((), [], 0.0, 0.0)
        start = time.perf_counter()
        for epoch in range(1, s.epochs + 1):
            beta = s.beta_weight * epoch / s.epochs if s.guard else 0.0
            w_sum = torch.zeros((), device=device)
            a_sum = torch.zeros((), device=device)
            pairs = zip(w_batches.epoch(bs, steps), a_batches.epoch(bs, steps), strict=True)
            for (xw, yw), (xa, ya) in pairs:
                # Architecture step, on the alpha half.
                a_opt.zero_grad(set_to_none=True)
                if s.second_order:
                    a_loss = _unrolled_alpha_grad(model, xw, yw, xa, ya, w_opt, s, costs, beta)
                else:
                    a_loss = _alpha_loss(model, xa, ya, s, costs, beta)
                    a_loss.backward()
                a_opt.step()

                # Weight step, on the weight half.
                w_opt.zero_grad(set_to_none=True)
                w_loss = F.cross_entropy(model(xw), yw)
                w_loss.backward()
                nn.utils.clip_grad_norm_(model.weights(), s.grad_clip)
                w_opt.step()
                sched.step()
                w_sum += w_loss.detach()
                a_sum += a_loss.detach()
            # The one host sync of the epoch.
            w_mean, a_mean = (w_sum / steps).item(), (a_sum / steps).item()
            if not (math.isfinite(w_mean) and math.isfinite(a_mean)):
                raise NonFiniteLossError(
                    f"non-finite supernet loss (weights {w_mean}, alpha {a_mean}) at epoch {epoch}"
                )
            cell = discretise(model.alpha, ops)
            row = {
                "epoch": float(epoch),
                "weight_loss": w_mean,
                "alpha_loss": a_mean,
                "expected_cost": float(expected_cost(model.alpha.detach(), costs)),
                "skip_connect": float(sum(op == "skip_connect" for op in cell)),
            }
            result.history.append(row)
            if on_epoch is not None:
                on_epoch(epoch, row)
        result.seconds = time.perf_counter() - start
        alpha = model.alpha.detach()
        result.cell = discretise(alpha, ops)
        result.probabilities = F.softmax(alpha, dim=-1).cpu().tolist()
        result.expected_cost = float(expected_cost(alpha, costs))
    return result


def _alpha_loss(
    model: Supernet,
    x: torch.Tensor,
    y: torch.Tensor,
    s: SearchSettings,
    costs: EdgeCosts,
    beta: float,
) -> torch.Tensor:
    """CE on the alpha half + lambda * normalised expected cost + the beta-DARTS term."""
    loss = F.cross_entropy(model(x), y)
    if s.cost_weight:
        loss = loss + s.cost_weight * normalised_cost(model.alpha, costs)
    if beta:
        loss = loss + beta * torch.logsumexp(model.alpha, dim=-1).mean()
    return loss


def _unrolled_alpha_grad(
    model: Supernet,
    xw: torch.Tensor,
    yw: torch.Tensor,
    xa: torch.Tensor,
    ya: torch.Tensor,
    w_opt: torch.optim.Optimizer,
    s: SearchSettings,
    costs: EdgeCosts,
    beta: float,
) -> torch.Tensor:
    """DARTS' second-order alpha gradient, left in ``model.alpha.grad``.

    ``w' = w - xi * dL_w/dw``; the gradient is ``dL_a(w', alpha)/dalpha - xi * H v`` with
    ``v = dL_a(w')/dw'`` and the Hessian-vector product by central finite differences,
    ``(dL_w(w + eps v)/dalpha - dL_w(w - eps v)/dalpha) / (2 eps)``, ``eps = 0.01 / |v|``.
    """
    weights = model.weights()
    xi = float(w_opt.param_groups[0]["lr"])
    backup = [w.detach().clone() for w in weights]
    grads = torch.autograd.grad(F.cross_entropy(model(xw), yw), weights, allow_unused=True)
    with torch.no_grad():
        for w, g in zip(weights, grads, strict=True):
            if g is not None:
                w.sub_(xi * (g + s.w_weight_decay * w))
    loss = _alpha_loss(model, xa, ya, s, costs, beta)
    both = torch.autograd.grad(loss, [model.alpha, *weights], allow_unused=True)
    d_alpha = both[0]
    v = [torch.zeros_like(w) if g is None else g for w, g in zip(weights, both[1:], strict=True)]
    eps = 0.01 / float(torch.cat([g.flatten() for g in v]).norm().clamp_min(1e-12))
    hvp = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for w, w0, g in zip(weights, backup, v, strict=True):
                w.copy_(w0 + sign * eps * g)
        train_loss = F.cross_entropy(model(xw), yw)
        (g_alpha,) = torch.autograd.grad(train_loss, [model.alpha])
        hvp.append(g_alpha)
    with torch.no_grad():
        for w, w0 in zip(weights, backup, strict=True):
            w.copy_(w0)
    assert d_alpha is not None
    model.alpha.grad = d_alpha - xi * (hvp[0] - hvp[1]) / (2 * eps)
    return loss.detach()
