"""The fit loop: shuffled mini-batches straight from in-memory tensors, one-cycle LR, progress bar.

Adversarial recipes hold out a validation batch and keep the epoch with the best robust accuracy on it, so a
run that overfits catastrophically (robustness collapsing within an epoch, a known failure of FGSM
training) ends with its last good weights. Robust accuracy there is the per-image worst case of PGD-10 and of
a short Square attack: a model that masks its gradients fools PGD, not a score-based search, and an epoch
where Square beats PGD by more than ``MASKING_GAP`` is flagged. Under ``torchrun`` each process trains on its
shard of every epoch's permutation inside DistributedDataParallel.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from torch import nn

from trustkit.data import ImageDataset
from trustkit.data.base import to_unit_float
from trustkit.errors import InvalidArgumentError
from trustkit.models.inference import accuracy
from trustkit.runtime import autocast, format_duration, log, progress
from trustkit.train.config import TrainConfig
from trustkit.train.distributed import Distributed
from trustkit.train.recipes import NOT_ADVERSARIAL, RECIPES

COLLAPSE = 0.7  # validation robust accuracy below this fraction of the best so far = catastrophic overfitting ...
ESTABLISHED = 0.2  # ... once the best so far shows real robustness (early epochs fluctuate near zero)
MASKING_GAP = 0.03  # Square (no gradients) beating PGD-10 by more than this (fraction) = gradient masking
GUARD_P_INIT = 0.8  # Square's initial square size against adversarially trained models (Andriushchenko et al.)


def is_collapse(val_robust_accuracy: float, best_so_far: float) -> bool:
    """Catastrophic overfitting: validation robust accuracy (fraction) fell below ``COLLAPSE`` of an established best.

    Measured on MNIST with FGSM-RS: PGD-10 85% -> 48% between two epochs while clean accuracy kept rising.
    """
    return best_so_far >= ESTABLISHED and val_robust_accuracy < COLLAPSE * best_so_far


@dataclass
class TrainHistory:
    """Per-epoch records: mean training loss, test accuracy (fraction), validation clean/PGD accuracy of
    adversarial recipes, wall seconds; ``best_epoch`` is the epoch whose weights were kept (1-based)."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    collapsed_at: int | None = None
    # adversarial recipes: the kept epoch's validation accuracy under PGD-10, under Square, and per image under both
    best_val_pgd_accuracy: float | None = None
    best_val_square_accuracy: float | None = None
    best_val_robust_accuracy: float | None = None
    masking_epochs: list[int] = field(default_factory=list)  # epochs where Square beat PGD-10 by > MASKING_GAP

    @property
    def never_robust(self) -> bool:
        """An adversarial recipe whose best epoch stayed below ``ESTABLISHED`` validation robust accuracy."""
        score = self.best_val_robust_accuracy
        score = self.best_val_pgd_accuracy if score is None else score
        return score is not None and score < ESTABLISHED

    @property
    def kept_masking(self) -> bool:
        """Square beat PGD-10 on the kept epoch by more than ``MASKING_GAP``: its gradients mislead attacks."""
        return self.best_epoch is not None and self.best_epoch in self.masking_epochs

    @property
    def final_accuracy(self) -> float | None:
        record = self.epochs[self.best_epoch - 1] if self.best_epoch else (self.epochs[-1] if self.epochs else {})
        return record.get("test_accuracy")

    @property
    def seconds(self) -> float:
        return sum(e["seconds"] for e in self.epochs)


def crop_flip(x: torch.Tensor, generator: torch.Generator | None = None, pad: int = 4) -> torch.Tensor:
    """Random ``pad``-pixel zero-padded crops and horizontal flips of a batch (standard CIFAR augmentation)."""
    n, c, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + dx[:, None])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(c, device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9, nesterov=True,
                           weight_decay=config.weight_decay)


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig,
              total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step learning-rate schedule peaking at ``config.lr``.

    "one-cycle": PyTorch's OneCycleLR (cosine, momentum / Adam's beta1 cycled inversely). "triangle": the schedule
    of Wong et al.'s fast adversarial training code — linear from 0 to the peak at 40% of the steps, then linear
    to 0, the optimizer's momentum untouched.
    """
    if config.schedule == "one-cycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total_steps)
    if config.schedule == "triangle":
        peak = max(1.0, 0.4 * total_steps)

        def factor(step: int) -> float:  # LambdaLR calls it with the number of steps taken so far
            done = step + 1
            return done / peak if done <= peak else max(0.0, (total_steps - done) / max(total_steps - peak, 1.0))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    raise InvalidArgumentError(f"unknown learning-rate schedule '{config.schedule}'; choose one-cycle or triangle")


def ramped(config: TrainConfig, fraction: float) -> TrainConfig:
    """``config`` with its budget ``eps`` (and an explicit ``alpha``) scaled by ``fraction`` (the eps warm-up)."""
    alpha = None if config.alpha is None else config.alpha * fraction
    return replace(config, eps=config.eps * fraction, alpha=alpha)


def validation_split(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(training indices, held-out indices): a seeded draw of ``size`` images (at most 10% of ``n``)."""
    size = min(size, n // 10)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    return order[size:].sort().values, order[:size].sort().values


def _still_correct(model: nn.Module, attack, x: torch.Tensor, y: torch.Tensor,  # noqa: ANN001 - an Attack
                   device: torch.device) -> torch.Tensor:
    """Per image (bool, on ``device``): classified correctly after ``attack``, run with fixed random draws."""
    model.eval()
    x, y = x.to(device), y.to(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the same random draws every epoch; training's RNG untouched
        torch.manual_seed(0)
        x_adv = attack(model, x, y)
    with torch.no_grad():
        return model(x_adv).argmax(1) == y


def guard_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, device: torch.device,
                 queries: int = 300) -> dict[str, float]:
    """The epoch guard's numbers on a held-out batch (fractions): accuracy under PGD-10, under Square (``queries``
    queries, p_init 0.8; skipped when 0) and per image under both (``val_robust_accuracy``: an image counts only
    if neither attack broke it), and ``val_blackbox_gap``, how far Square's accuracy lies below PGD's (> 0: the
    score-based attack beat the gradient attack, a sign of gradient masking)."""
    from trustkit.attacks import PGD, Square

    robust = _still_correct(model, PGD(eps, steps=10), x, y, device)
    scores = {"val_pgd_accuracy": robust.float().mean().item()}
    if queries > 0:
        square = _still_correct(model, Square(eps, norm="linf", n_queries=queries, p_init=GUARD_P_INIT), x, y, device)
        scores["val_square_accuracy"] = square.float().mean().item()
        scores["val_blackbox_gap"] = scores["val_pgd_accuracy"] - scores["val_square_accuracy"]
        robust = robust & square
    scores["val_robust_accuracy"] = robust.float().mean().item()
    return scores


ESTIMATE_SKIP_STEPS = 3  # the first steps pay one-time costs (kernel selection, allocator): not timed
ESTIMATE_AFTER_STEPS = 5  # steps timed, after the skipped ones, before the whole run's duration is estimated
LONG_TRAINING_SECONDS = 120.0  # estimates above this are announced, with the ways to make it shorter


class StepPace:
    """Times steps ``skip + 1`` to ``skip + count`` of a run: :meth:`tick` after each step returns the seconds per
    step once, after step ``skip + count``, and None otherwise. Timing the very first steps would count their
    one-time warm-up (on a 2-core CPU the first PGD-3 step of cnn-small took ten times a later one)."""

    def __init__(self, skip: int = ESTIMATE_SKIP_STEPS, count: int = ESTIMATE_AFTER_STEPS) -> None:
        self.skip, self.count, self.steps, self.since = skip, count, 0, None

    def tick(self, now: float) -> float | None:
        self.steps += 1
        if self.steps == self.skip:
            self.since = now
        elif self.steps == self.skip + self.count and self.since is not None:
            return (now - self.since) / self.count
        return None


def warn_if_long(description: str, elapsed: float, steps: int, total_steps: int, device: torch.device) -> float:
    """After the first ``steps`` of ``total_steps`` took ``elapsed`` seconds: the estimated seconds for the
    whole run; above :data:`LONG_TRAINING_SECONDS` a line says so and names the ways out."""
    estimate = elapsed / max(steps, 1) * total_steps
    if estimate > LONG_TRAINING_SECONDS:
        faster = "a GPU (--device cuda), " if device.type == "cpu" else ""
        log(f"{description}: this will take about {format_duration(estimate)} on {device.type} "
            f"({total_steps:,} steps at {elapsed / max(steps, 1):.2f} s each, validation not counted); to wait less "
            f"use {faster}a smaller zoo model (e.g. resnet20 instead of resnet on CIFAR-10) or fewer --epochs")
    return estimate


def fit(model: nn.Module, train_set: ImageDataset, config: TrainConfig, *, device: torch.device,
        seed: int = 0, test_set: ImageDataset | None = None,
        augment: str | Callable[[torch.Tensor, torch.Generator], torch.Tensor] = "none",
        description: str = "train", distributed: Distributed | None = None) -> TrainHistory:
    """Train ``model`` in place on ``train_set``; evaluates ``test_set`` accuracy after every epoch.

    ``augment``: "crop-flip" (the data set's, when ``config.augment``), "none", or a callable applied to every
    training batch (floats in [0, 1] on ``device``, and the loop's seeded generator), such as the fake-detection
    protocol's blur + JPEG.

    Adversarial recipes (not "clean" or "gaussian") train on all but ``config.validation_size`` images and
    end with the weights of the epoch with the best robust accuracy on those held out (per image the worst case
    of PGD-10 and Square, see :func:`guard_scores`).
    """
    for name, value, low in (("--lr", config.lr, 0.0), ("--weight-decay", config.weight_decay, -1.0)):
        if not math.isfinite(value) or value <= low:
            raise InvalidArgumentError(f"{name} must be a finite number > {max(low, 0):g}, got {value}")
    distributed = distributed or Distributed.single()
    generator = torch.Generator().manual_seed(seed)
    adversarial = config.recipe not in NOT_ADVERSARIAL  # gaussian noise training is validated clean, no guard
    # first: a folder data set decodes its files here and drops any it could not read (skip_bad)
    images = train_set.images.pin_memory() if device.type == "cuda" else train_set.images
    train_index = torch.arange(len(train_set))
    if adversarial:
        train_index, held_out = validation_split(len(train_set), config.validation_size, seed)
        x_val, y_val = train_set.tensors(held_out)
    loss_fn = RECIPES.get(config.recipe)(config)
    trained = distributed.wrap(model)
    step_model = torch.compile(trained) if config.compile else trained
    optimizer = _optimizer(model, config)
    steps_per_epoch = -(-len(distributed.shard(train_index)) // config.batch_size)
    warmup_steps = round(config.eps_warmup * steps_per_epoch) if adversarial else 0
    step = 0
    schedule = _schedule(optimizer, config, config.epochs * steps_per_epoch)
    labels = train_set.labels
    channels_last = device.type == "cuda" and images.ndim == 4
    history = TrainHistory()
    best_score, best_state = -1.0, None
    total_steps = config.epochs * steps_per_epoch
    training_started = time.perf_counter()
    step_pace = StepPace()  # runs of fewer steps than it times are short: nothing to announce
    with progress(description, total_steps) as bar:
        for epoch in range(config.epochs):
            started = time.perf_counter()
            model.train()
            order = train_index[torch.randperm(len(train_index), generator=generator)]
            order = distributed.shard(order)
            total_loss = torch.zeros((), device=device)
            for start in range(0, len(order), config.batch_size):
                index = order[start:start + config.batch_size]
                x = to_unit_float(images[index].to(device, non_blocking=True))
                y = labels[index].to(device, non_blocking=True)
                if callable(augment):
                    x = augment(x, generator)
                elif config.augment and augment == "crop-flip":
                    x = crop_flip(x, generator)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                if step < warmup_steps:  # the budget (and a given alpha) ramps up linearly from eps / warmup_steps
                    loss_fn = RECIPES.get(config.recipe)(ramped(config, (step + 1) / warmup_steps))
                with autocast(device, config.amp):
                    loss = loss_fn(step_model, x, y)
                step += 1
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.detach() * len(index)
                bar.advance()
                per_step = step_pace.tick(time.perf_counter())
                if per_step is not None and distributed.is_main:
                    warn_if_long(description, per_step * ESTIMATE_AFTER_STEPS, ESTIMATE_AFTER_STEPS, total_steps,
                                 device)
            record = {"epoch": epoch + 1, "train_loss": distributed.mean(total_loss / max(len(order), 1)).item()}
            if not math.isfinite(record["train_loss"]):  # checked once per epoch: no host sync per step
                raise InvalidArgumentError(f"training diverged: the loss became {record['train_loss']} in epoch "
                                           f"{epoch + 1}, so no checkpoint was written; lower --lr (now "
                                           f"{config.lr:g}) or check the data for NaN pixels")
            if distributed.is_main:
                if test_set is not None:
                    x_test, y_test = test_set.tensors()
                    record["test_accuracy"] = accuracy(model, x_test, y_test, device=device)
                if adversarial:
                    record["val_accuracy"] = accuracy(model, x_val, y_val, device=device)
                    record.update(guard_scores(model, x_val, y_val, config.eps, device, config.guard_queries))
                    score = record["val_robust_accuracy"]
                    if record.get("val_blackbox_gap", 0.0) > MASKING_GAP:
                        history.masking_epochs.append(epoch + 1)
                        log(f"gradient masking at epoch {epoch + 1}: Square (no gradients) leaves "
                            f"{record['val_square_accuracy']:.1%} of the validation images, PGD-10 "
                            f"{record['val_pgd_accuracy']:.1%}; the guard scores the epoch by the worst case")
                    if score > best_score:
                        best_score, best_state = score, copy.deepcopy(model.state_dict())
                        history.best_epoch = epoch + 1
                    elif is_collapse(score, best_score) and history.collapsed_at is None:
                        history.collapsed_at = epoch + 1
                        log(f"catastrophic overfitting at epoch {epoch + 1}: validation robust accuracy "
                            f"{score:.1%} after {best_score:.1%} (best so far: epoch "
                            f"{history.best_epoch}, whose weights are kept unless a later epoch beats it)")
            record["seconds"] = time.perf_counter() - started
            history.epochs.append(record)
            note = f"epoch {epoch + 1}/{config.epochs} loss {record['train_loss']:.3f}"
            note += f" acc {record['test_accuracy']:.1%}" if "test_accuracy" in record else ""
            note += f" val-pgd {record['val_pgd_accuracy']:.1%}" if "val_pgd_accuracy" in record else ""
            note += f" val-square {record['val_square_accuracy']:.1%}" if "val_square_accuracy" in record else ""
            if epoch + 1 < config.epochs:  # the time left, from the pace so far (the line a log file shows)
                pace = (time.perf_counter() - training_started) / (epoch + 1)
                note += f" eta {format_duration(pace * (config.epochs - epoch - 1))}"
            bar.note(note, milestone=distributed.is_main)
            distributed.barrier()
    if best_state is not None:
        model.load_state_dict(best_state)
        kept = history.epochs[history.best_epoch - 1]
        history.best_val_pgd_accuracy = kept["val_pgd_accuracy"]
        history.best_val_square_accuracy = kept.get("val_square_accuracy")
        history.best_val_robust_accuracy = kept["val_robust_accuracy"]
    if history.never_robust and distributed.is_main:
        log(f"warning: adversarial training did not take: the best validation robust accuracy (worst case of PGD-10 "
            f"and Square) was {best_score:.1%} (epoch {history.best_epoch}), so this model is not robust at eps "
            f"{config.eps:g}. Catastrophic overfitting from the first epochs is the usual cause: try a short PGD "
            "(--adv pgd --attack-steps 3), a smaller --alpha, or a lower --lr")
    model.eval()
    return history
