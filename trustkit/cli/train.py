"""``trustkit train``: train a zoo classifier — clean, adversarially or with Gaussian noise — into the store."""
from __future__ import annotations

import math

import click

from trustkit.cli import options as opt


@click.command()
@opt.model("Zoo architecture: softmax, mlp, cnn, cnn-small, resnet, resnet20, preact-resnet18, disc196.", required=True)
@opt.dataset()
@opt.epochs("Training epochs (default: tuned per model and data set).")
@opt.batch_size("Mini-batch size.", default=None)
@opt.lr("Peak learning rate of the cyclic schedule.")
@click.option("--schedule", type=click.Choice(["one-cycle", "triangle"]),
              help="Learning-rate schedule: one-cycle (cosine, the default for most models) or triangle (linear up "
                   "to the peak at 40% of training, then down to 0, as in fast AT; the default for cnn-small).")
@opt.seed("Seed for initialisation and shuffling.")
@opt.device()
@opt.data_options()
@opt.out("Write the checkpoint here (one .safetensors file, metadata in its header) instead of the "
         "store entry bench uses.", default=None, file=True)
@click.option("--adv", "recipe", default="clean", show_default=True,
              help="Training recipe: clean, or adversarial training fast (PGD-3 with the budget warmed up over "
                   "the first epoch: the cheap recipe that held up under `bench strong` on MNIST), fgsm-rs (Wong "
                   "et al. 2020's fast AT, FGSM from a random start; it can overfit catastrophically), n-fgsm (de "
                   "Jorge et al. 2022), pgd (PGD-10, Madry et al. 2018) or trades (Zhang et al. 2019).")
@opt.eps("Adversarial-training budget (linf, pixel scale [0, 1]; 8/255 works).", several=False)
@opt.alpha("Attack step size (fgsm-rs: 1.25·eps; n-fgsm: eps; fast, pgd, trades: 2.5·eps/steps).")
@opt.attack_steps("Attack iterations of fast / pgd / trades training (default 3 for fast, 10 otherwise).")
@opt.beta("TRADES robustness weight (default 6).")
@click.option("--noise", "sigma", type=float,
              help="Gaussian-noise training for randomized smoothing (Cohen et al. 2019): cross-entropy on "
                   "x + SIGMA·N(0, I), SIGMA in pixel units of [0, 1] (0.25, 0.5, 1.0 are the usual levels). Stored "
                   "as e.g. cnn-mnist-gaussian-sigma0.25, the base model `trustkit certify --sigma 0.25` uses. "
                   "Not with --adv.")
@opt.compile_model("torch.compile the model (worth it on a GPU).")
def train(model: str, dataset: str, epochs: int | None, batch_size: int | None, lr: float | None,
          schedule: str | None, seed: int, device: str, data_root: str | None, download: bool, out: str | None,
          recipe: str, eps: str | None, alpha: float | None, attack_steps: int | None, beta: float | None,
          sigma: float | None, compile_model: bool) -> None:
    """Train a zoo classifier, clean or adversarially, and store it (bench uses it as --model NAME).

    Adversarial training holds out 512 training images and keeps the epoch with the best PGD accuracy on
    them, so catastrophic overfitting cannot spoil the final model. The store entry is named after the
    recipe, e.g. cnn-small-mnist-fast-eps0.3. Under `torchrun --nproc_per_node N -m trustkit train ...` the
    processes train data-parallel.

    \b
        trustkit train --model cnn --dataset mnist --data-root ../data --epochs 3
        trustkit train --model cnn-small --dataset mnist --data-root ../data --adv fast --eps 0.3
        trustkit bench strong --dataset mnist --data-root ../data --model cnn-small-mnist-fast-eps0.3 --eps 0.3
        trustkit train --model cnn --dataset mnist --data-root ../data --noise 0.25   # for trustkit certify
    """
    from trustkit.errors import InvalidArgumentError
    from trustkit.train import train_model

    for name, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise InvalidArgumentError(f"{name} must be at least 1, got {value}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):  # nan <= 0 is False: test finiteness first
        raise InvalidArgumentError(f"--lr must be a finite number > 0, got {lr}")
    from trustkit.attacks import parse_eps

    if sigma is not None:
        if recipe != "clean" or eps is not None:
            raise InvalidArgumentError("--noise trains with Gaussian noise, not adversarially; drop --adv/--eps, or "
                                       "drop --noise to train adversarially")
        if not (math.isfinite(sigma) and sigma > 0):
            raise InvalidArgumentError(f"--noise must be a finite number > 0 (pixel scale [0, 1]), got {sigma}; "
                                       "e.g. --noise 0.25")
        recipe = "gaussian"
    elif recipe == "gaussian":
        raise InvalidArgumentError("the gaussian recipe takes its noise level from --noise; write --noise 0.25 "
                                   "instead of --adv gaussian")
    elif recipe != "clean" and eps is None:
        raise InvalidArgumentError(f"--adv {recipe} needs a budget: add --eps, e.g. --eps 0.3 or --eps 8/255")
    result = train_model(model, dataset, seed=seed, device=device, data_root=data_root, out=out, download=download,
                         recipe=recipe, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
                         eps=parse_eps(eps) if eps is not None else None, alpha=alpha, attack_steps=attack_steps,
                         beta=beta, sigma=sigma, compile=compile_model or None)
    if result.path is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    click.echo(f"test accuracy {result.history.final_accuracy:.2%} after {len(result.history.epochs)} epochs "
               f"({result.history.seconds:.1f} s); checkpoint: {result.path}")
    if result.history.best_epoch:
        best = result.history.epochs[result.history.best_epoch - 1]
        click.echo(f"kept epoch {result.history.best_epoch}: validation clean {best['val_accuracy']:.1%}, "
                   f"PGD-10 {best['val_pgd_accuracy']:.1%}; use it as --model {result.path.stem}")
