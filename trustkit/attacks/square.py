"""Square attack (Andriushchenko et al. 2020): score-based black-box random search, linf and l2.

The attacker sees only the model's output scores (logits), never its gradients: every model call runs under
``torch.no_grad()``. Each iteration proposes one random change of a square window of the image, on the
boundary of the threat model, and keeps it when the loss improves (a margin loss on the logits, as in the
paper: ``z_y - max_{j != y} z_j``; targeted: cross-entropy of the target). The square's area, a fraction
``p`` of the image, shrinks on the paper's schedule. A sample stops at its first query that fools the model,
so ``last_queries`` holds per sample the number of model queries spent — for a fooled sample, the query at
which it was fooled.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.attacks.losses import fooled as is_fooled
from trustkit.errors import InvalidArgumentError

DEFAULT_P_INIT = {"linf": 0.05, "l2": 0.1}  # the official code's defaults for standard (non-robust) models
# Iterations (of a 10,000-query run) after which p halves; the schedule is rescaled to the actual budget.
P_CHECKPOINTS = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init: float, iteration: int, n_queries: int) -> float:
    """Fraction of the image that the square covers at ``iteration`` (0-based) of an ``n_queries`` run.

    Piecewise constant: ``p_init`` until iteration 10 (of 10,000), then halved after 10, 50, 200, 500,
    1000, 2000, 4000, 6000 and 8000 iterations, the checkpoints scaled by ``n_queries / 10000``.
    """
    scaled = int(iteration / n_queries * 10000)
    halvings = sum(scaled > checkpoint for checkpoint in P_CHECKPOINTS)
    return p_init / 2 ** halvings


def _pseudo_gaussian(rows: int, cols: int) -> torch.Tensor:
    """Nested rectangles of weight 1/(k+1)^2 around the centre: a cheap Gaussian-like bump of unit L2 norm."""
    bump = torch.zeros(rows, cols, dtype=torch.float64)
    centre_r, centre_c = rows // 2, cols // 2
    for k in range(max(rows // 2 + 1, cols // 2 + 1)):
        r0, c0 = centre_r - k, centre_c - k
        bump[max(r0, 0):min(r0 + 2 * k + 1, rows), max(c0, 0):min(c0 + 2 * k + 1, cols)] += 1.0 / (k + 1) ** 2
    norm = bump.norm()
    return bump / norm if norm > 0 else bump


def square_bump(size: int) -> torch.Tensor:
    """The paper's l2 update shape: two pseudo-Gaussian halves of opposite sign, unit L2 norm, randomly
    transposed (so the halves split the square vertically or horizontally)."""
    bump = torch.zeros(size, size, dtype=torch.float64)
    half = size // 2
    if half:
        bump[:half] = _pseudo_gaussian(half, size)
    bump[half:] = -_pseudo_gaussian(size - half, size)
    bump = bump / bump.norm().clamp_min(1e-12)
    if float(torch.rand(())) > 0.5:
        bump = bump.t()
    return bump.float()


def _random_signs(shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    return torch.randint(0, 2, shape, device=device).float().mul_(2).sub_(1)


def _per_sample_norm(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.ndim - 1))


class Square(Attack):
    """Square attack, score-based: ``n_queries`` model queries per sample at most, square size ``p_init``.

    ``p_init`` (default 0.05 for linf, 0.1 for l2, the official code's values for standard models; the
    authors use 0.8 against adversarially trained MNIST models) is the initial fraction of pixels a square
    covers. After a call, ``last_queries`` (int64, CPU) holds per sample the queries spent: the query at which
    the sample was first fooled, or ``n_queries`` when it never was.
    """

    name = "square"
    access = "black-box"
    can_target = True

    def __init__(self, eps: float | str, *, norm: str = "linf", n_queries: int = 1000, p_init: float | None = None,
                 targeted: bool = False, early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, targeted=targeted, early_stop=early_stop)
        if int(n_queries) < 1:
            raise InvalidArgumentError(f"square needs n_queries >= 1 (the query budget per image), got {n_queries}")
        self.n_queries = int(n_queries)
        self.p_init = float(p_init) if p_init is not None else DEFAULT_P_INIT[self.norm]
        if not 0 < self.p_init <= 1:
            raise InvalidArgumentError(f"square p_init is a fraction of the image in (0, 1], got {p_init}")
        self.last_queries = torch.empty(0, dtype=torch.long)

    def params(self) -> dict[str, object]:
        return {**super().params(), "n_queries": self.n_queries, "p_init": self.p_init}

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss to *minimise*: the logit margin (untargeted) or the target's cross-entropy."""
        logits = logits.float()
        if self.targeted:
            return nn.functional.cross_entropy(logits, y, reduction="none")
        true = logits.gather(1, y[:, None]).squeeze(1)
        others = logits.scatter(1, y[:, None], -torch.inf).amax(1)
        return true - others

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():  # scores only: no graph is ever built through the model
            x_adv, queries = self._search(model, x, y)
        self.last_queries = queries.cpu()
        return x_adv

    def _search(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(x)
        queries = torch.zeros(n, dtype=torch.long, device=x.device)
        if n == 0:
            return x.clone(), queries
        x_best = self._initial_point(x)
        logits = model(x_best)
        queries += 1
        loss = self._loss(logits, y)
        done = is_fooled(logits, y, self.targeted)
        first_fooled = torch.where(done, queries, torch.full_like(queries, self.n_queries))
        for iteration in range(self.n_queries - 1):
            # early_stop=False keeps improving fooled samples too, for the whole budget (the strongest point)
            rows = (~done).nonzero().squeeze(1) if self.early_stop else torch.arange(n, device=x.device)
            if len(rows) == 0 or self.eps == 0:  # eps 0: no proposal can change the image
                break
            x_rows, best_rows = x[rows], x_best[rows]
            p = p_selection(self.p_init, iteration, self.n_queries)
            proposal = (self._propose_linf if self.norm == "linf" else self._propose_l2)(x_rows, best_rows, p)
            logits = model(proposal)
            queries[rows] += 1
            new_loss = self._loss(logits, y[rows])
            success = is_fooled(logits, y[rows], self.targeted)
            # early_stop keeps a fooling proposal at once; otherwise only real improvements of the loss count
            improved = (new_loss < loss[rows]) | (success if self.early_stop else False)
            kept = rows[improved]
            x_best[kept], loss[kept] = proposal[improved], new_loss[improved]
            newly = rows[success & ~done[rows]]
            first_fooled[newly] = queries[newly]
            done[rows[success]] = True
        return x_best, first_fooled if not self.early_stop else queries

    def _initial_point(self, x: torch.Tensor) -> torch.Tensor:
        """linf: vertical stripes of ±eps (one sign per column and channel); l2: a grid of ±bumps scaled to eps."""
        n, c, h, w = x.shape
        if self.norm == "linf":
            return (x + self.eps * _random_signs((n, c, 1, w), x.device)).clamp(0.0, 1.0)
        size = max(h // 5, 1)
        delta = torch.zeros_like(x)
        top0, left0 = (h - size * 5) // 2, (w - size * 5) // 2
        for i in range(h // size):
            for j in range(w // size):
                top, left = max(top0 + i * size, 0), max(left0 + j * size, 0)
                window = delta[:, :, top:top + size, left:left + size]
                if window.numel() == 0:
                    continue
                bump = square_bump(size).to(x.device)[:window.shape[2], :window.shape[3]]
                window += bump * _random_signs((n, c, 1, 1), x.device)
        return (x + delta / _per_sample_norm(delta).clamp_min(1e-12) * self.eps).clamp(0.0, 1.0)

    def _propose_linf(self, x: torch.Tensor, best: torch.Tensor, p: float) -> torch.Tensor:
        """Per sample, one square of side ``sqrt(p·h·w)`` set to ``x ± eps`` (one sign per channel). A draw that
        would leave the current best point unchanged (a query that cannot tell anything) is replaced by one of
        the other sign patterns, uniformly: what redrawing until something changes gives, without the loop."""
        m, c, h, w = x.shape
        side = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w) - 1) if min(h, w) > 1 else 1
        top = torch.randint(0, h - side + 1, (m,), device=x.device)
        left = torch.randint(0, w - side + 1, (m,), device=x.device)
        rows = torch.arange(h, device=x.device)[None, :]
        cols = torch.arange(w, device=x.device)[None, :]
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + side)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + side)
        window = (in_rows[:, :, None] & in_cols[:, None, :])[:, None]  # m×1×h×w
        signs = _random_signs((m, c, 1, 1), x.device)
        proposal = torch.where(window, (x + self.eps * signs).clamp(0.0, 1.0), best)
        redo = ((proposal - best).abs() < 1e-7).flatten(1).all(1).nonzero().squeeze(1)
        if len(redo):
            # unchanged under signs s means best = clamp(x + s·eps) in the window; flipping any non-empty set
            # of channels changes those channels (x - eps < x + eps, and both cannot clip to the same bound)
            flips = torch.randint(1, 2 ** c, (len(redo), 1), device=x.device)
            bits = (flips >> torch.arange(c, device=x.device)[None, :]) & 1  # a random non-empty channel set
            flipped = signs[redo] * (1 - 2 * bits.float())[:, :, None, None]
            proposal[redo] = torch.where(window[redo], (x[redo] + self.eps * flipped).clamp(0.0, 1.0), best[redo])
        return proposal

    def _propose_l2(self, x: torch.Tensor, best: torch.Tensor, p: float) -> torch.Tensor:
        """The paper's l2 update: a new ±bump in window 1 plus its old content (normalised), taking over the
        budget of window 2 (set to zero) and any budget left unused; the whole perturbation is rescaled to eps."""
        m, c, h, w = x.shape
        side = max(int(round(math.sqrt(p * h * w))), 3)
        side += 1 - side % 2  # odd sides, as in the paper
        side = max(1, min(side, min(h, w) - 1))
        delta = best - x
        top1, left1 = (int(torch.randint(0, dim - side + 1, ()).item()) for dim in (h, w))
        top2, left2 = (int(torch.randint(0, dim - side + 1, ()).item()) for dim in (h, w))
        mask1 = torch.zeros(1, 1, h, w, dtype=torch.bool, device=x.device)
        mask1[..., top1:top1 + side, left1:left1 + side] = True
        mask2 = torch.zeros_like(mask1)
        mask2[..., top2:top2 + side, left2:left2 + side] = True
        window_norm = (delta * mask1).pow(2).sum((2, 3), keepdim=True).sqrt()  # per channel
        image_norm = _per_sample_norm(delta)
        union_norm = (delta * (mask1 | mask2)).pow(2).sum((2, 3), keepdim=True).sqrt()
        new = square_bump(side).to(x.device).view(1, 1, side, side) * _random_signs((m, c, 1, 1), x.device)
        new = new + delta[:, :, top1:top1 + side, left1:left1 + side] / (1e-10 + window_norm)
        budget = ((self.eps ** 2 - image_norm.pow(2)).clamp_min(0) / c + union_norm.pow(2)).sqrt()
        new = new / new.pow(2).sum((2, 3), keepdim=True).sqrt().clamp_min(1e-12) * budget
        delta = delta.clone()
        delta[:, :, top2:top2 + side, left2:left2 + side] = 0.0
        delta[:, :, top1:top1 + side, left1:left1 + side] = new
        return (x + delta / _per_sample_norm(delta).clamp_min(1e-12) * self.eps).clamp(0.0, 1.0)
