"""HopSkipJump (Chen et al. 2020), decision-based: ART's implementation under a per-image query budget.

The attacker sees only the predicted *label* of each image it asks about. ART's ``HopSkipJump`` does the search
(random start, binary search to the boundary, gradient-direction estimates from label flips, geometric step
search); trustkit runs it one image at a time on a :class:`BudgetedOracle` that charges every input row to that
image and ends the search

- at the first query that lies inside the threat model (``||q - x|| <= eps``, in [0, 1]) and is adversarial:
  the attacker knows eps and gets the label, so that query *is* an adversarial example (the same rule as
  trustkit's Square attack, whose samples stop when fooled), or
- when the image's budget ``n_queries`` is spent; the result is then the adversarial query closest to ``x`` seen
  so far (projected onto the threat model by the caller; usually no longer adversarial), else ``x``.

With ``early_stop=False`` the search never stops early: it spends the budget, and the closest adversarial point
is extended along its direction to the ball's boundary (see :func:`trustkit.attacks.base.extend_to_boundary`).

How queries are counted: ART asks its classifier in batches (the clean image, random starting points, up to
``max_eval`` boundary probes per iteration, binary-search steps); each input row of each batch is one query.
A batch that would overrun the budget is cut to the rows that fit (the rest is never shown to the model).
ART's closing bookkeeping (a success-rate log that predicts the clean and final images again) runs after the
search and is not charged; nor is one probe per batch to learn the number of classes (the output format).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from trustkit.attacks.base import Attack
from trustkit.errors import InvalidArgumentError


class _Stop(Exception):
    """Raised inside ART's search to end it: the image is fooled inside the ball, or its budget is spent."""


class BudgetedOracle(nn.Module):
    """Label oracle of one image ``x`` with true label (or target) ``y``: forwards to ``model``, charges each
    input row as one query, records the first adversarial query inside the threat model and the closest
    adversarial query overall, and raises :class:`_Stop` on success or when ``budget`` queries are spent."""

    def __init__(self, model: nn.Module, attack: "HopSkipJump", x: torch.Tensor, y: torch.Tensor, budget: int) -> None:
        super().__init__()
        self.model, self.attack, self.x, self.y, self.budget = model, attack, x, y, budget
        self.queries = 0
        self.charging = True  # off once ART's search has returned (its bookkeeping is not the attacker's)
        self.found: torch.Tensor | None = None
        self.closest: torch.Tensor | None = None
        self.closest_distance = float("inf")

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        if not self.charging:
            return self.model(rows)
        rows = rows[:max(self.budget - self.queries, 0)]  # rows beyond the budget are never shown to the model
        logits = self.model(rows)
        self.queries += len(rows)
        predicted = logits.argmax(1)
        adversarial = predicted == self.y if self.attack.targeted else predicted != self.y
        if bool(adversarial.any()):
            delta = (rows[adversarial] - self.x).flatten(1)
            distance = delta.abs().amax(1) if self.attack.norm == "linf" else delta.norm(dim=1)
            inside = (distance <= self.attack.threat.eps32).nonzero().squeeze(1)
            if len(inside) and self.attack.early_stop:  # else: search on, for the closest point in the budget
                self.found = rows[adversarial][inside[0]:inside[0] + 1].detach()
                raise _Stop
            best = int(distance.argmin())
            if float(distance[best]) < self.closest_distance:
                self.closest_distance = float(distance[best])
                self.closest = rows[adversarial][best:best + 1].detach()
        if self.queries >= self.budget:
            raise _Stop
        return logits


class HopSkipJump(Attack):
    """HopSkipJump, decision-based (labels only), through ART, with at most ``n_queries`` queries per image.

    ``max_iter``, ``max_eval``, ``init_eval`` and ``init_size`` are ART's: iterations, the largest and first
    number of boundary probes per gradient estimate, and the random trials for a starting point. After a
    call, ``last_queries`` (int64, CPU) holds per image the queries spent: for a fooled image the query that
    fooled it. Needs the ``art`` extra (adversarial-robustness-toolbox).
    """

    name = "hopskipjump"
    access = "black-box"
    boundary_point = True  # a decision-based search walks along the boundary
    can_target = True

    def __init__(self, eps: float | str, *, norm: str = "linf", n_queries: int = 1000, max_iter: int = 50,
                 max_eval: int = 1000, init_eval: int = 100, init_size: int = 100, targeted: bool = False,
                 early_stop: bool = True) -> None:
        super().__init__(eps, norm=norm, targeted=targeted, early_stop=early_stop)
        if int(n_queries) < 1:
            raise InvalidArgumentError(f"hopskipjump needs n_queries >= 1 (the query budget per image), got {n_queries}")
        for key, value in (("max_iter", max_iter), ("max_eval", max_eval), ("init_eval", init_eval),
                           ("init_size", init_size)):
            if int(value) < 1:
                raise InvalidArgumentError(f"hopskipjump needs {key} >= 1, got {value}")
        if int(init_eval) > int(max_eval):
            raise InvalidArgumentError(f"hopskipjump needs init_eval <= max_eval, got {init_eval} > {max_eval}")
        self.n_queries, self.max_iter, self.max_eval = int(n_queries), int(max_iter), int(max_eval)
        self.init_eval, self.init_size = int(init_eval), int(init_size)
        self.last_queries = torch.empty(0, dtype=torch.long)

    def params(self) -> dict[str, object]:
        return {**super().params(), "n_queries": self.n_queries, "max_iter": self.max_iter,
                "max_eval": self.max_eval, "init_eval": self.init_eval, "init_size": self.init_size}

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        try:
            from art.attacks.evasion import HopSkipJump as ArtHopSkipJump
        except ImportError:
            raise InvalidArgumentError("hopskipjump runs through the Adversarial Robustness Toolbox; install it "
                                       "with: pip install adversarial-robustness-toolbox") from None
        from trustkit.attacks.art_bridge import art_classifier, art_norm

        out, queries = x.clone(), torch.zeros(len(x), dtype=torch.long)
        if len(x) == 0:
            self.last_queries = queries
            return out
        with torch.no_grad():
            nb_classes = int(model(x[:1]).shape[1])  # the output format, not a question about an image
        for i in range(len(x)):
            oracle = BudgetedOracle(model, self, x[i:i + 1], y[i:i + 1], self.n_queries)
            classifier = art_classifier(oracle, tuple(x.shape[1:]), nb_classes)
            attack = ArtHopSkipJump(classifier, batch_size=self.max_eval, targeted=self.targeted,
                                    norm=art_norm(self.norm), max_iter=self.max_iter, max_eval=self.max_eval,
                                    init_eval=self.init_eval, init_size=self.init_size, verbose=False)
            search = getattr(attack, "_perturb", None)  # ART's per-image search: stop charging once it returns
            if search is not None:  # (without it, ART's closing check is charged too: an upper bound)

                def perturb_once(*args, _search=search, _oracle=oracle, **kwargs):  # noqa: ANN002,ANN003,ANN202
                    try:
                        return _search(*args, **kwargs)
                    finally:
                        _oracle.charging = False

                attack._perturb = perturb_once
            result = None
            try:
                with warnings.catch_warnings(), torch.no_grad():
                    warnings.simplefilter("ignore")
                    x_np = x[i:i + 1].detach().cpu().numpy().astype(np.float32)
                    y_np = np.eye(nb_classes, dtype=np.float32)[y[i:i + 1].cpu().numpy()]
                    result = attack.generate(x_np, y=y_np)
            except _Stop:
                pass
            if oracle.found is not None:
                out[i:i + 1] = oracle.found.to(x.device, x.dtype)
            elif result is not None:
                out[i:i + 1] = torch.from_numpy(np.asarray(result, dtype=np.float32)).to(x.device)
            elif oracle.closest is not None:
                out[i:i + 1] = oracle.closest.to(x.device, x.dtype)
            queries[i] = oracle.queries
        self.last_queries = queries
        return out
