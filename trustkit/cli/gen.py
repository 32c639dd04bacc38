"""``trustkit gen``: train, sample, interpolate, do latent arithmetic with, and evaluate generative models.

Registered on the main command tree in ``trustkit/cli/__init__.py``; errors raise TrustkitError, which the main
entry point turns into one line and exit code 2.
"""
from __future__ import annotations

from typing import Any, Sequence

import click

from trustkit.cli import options as opt
from trustkit.cli.options import split_list
from trustkit.cli.tables import print_table

MODEL_SPEC_HELP = ("A generative model name (its store entry for --dataset, e.g. dcgan -> gen-dcgan-mnist), a "
                   "store entry such as gen-dcgan-mnist, or a .safetensors checkpoint.")
DATASET_HELP = "digits (embedded), mnist, cifar10 or faces. For a checkpoint: its own data set by default."


def _floats(values: Sequence[str], option: str) -> list[float]:
    from trustkit.errors import InvalidArgumentError

    try:
        return [float(v) for v in split_list(values)]
    except ValueError:
        raise InvalidArgumentError(f"{option} takes numbers such as -2,-1,0,1,2; got '{','.join(values)}'") from None


def _positive(**values: int | None) -> None:
    from trustkit.errors import InvalidArgumentError

    for name, value in values.items():
        if value is not None and value < 1:
            raise InvalidArgumentError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def _load(model: str, dataset: str | None, device: str) -> Any:
    from trustkit.generative.store import resolve_generator
    from trustkit.runtime import select_device

    return resolve_generator(model, dataset, select_device(device))


def _class_labels(values: Sequence[str], class_names: Sequence[str]) -> list[int]:
    from trustkit.errors import InvalidArgumentError

    labels = []
    lowered = [c.lower() for c in class_names]
    for value in split_list(values):
        if value.lower() in lowered:
            labels.append(lowered.index(value.lower()))
        elif value.isdigit() and int(value) < len(class_names):
            labels.append(int(value))
        else:
            raise InvalidArgumentError(f"unknown class '{value}'; use one of: {', '.join(class_names)} "
                                       f"(or 0..{len(class_names) - 1})")
    return labels


gen = click.Group(
    name="gen",
    help="""Generative models: train, sample, interpolate, latent arithmetic, evaluate.

    \b
    Models: ae, conv-ae, vae, conv-vae, beta-vae, cvae, dcgan, cgan, acgan, wgan-gp, acgan-cifar, wgan-gp-cifar ('trustkit gen list').
    Data sets: digits (embedded, the default), mnist, cifar10, faces (UTKFace 64×64).

    \b
        trustkit gen train --model dcgan --dataset mnist --data-root ../shared/data --epochs 5
        trustkit gen sample --model cgan --dataset mnist --per-class --out cgan.png
        trustkit gen interpolate --model vae --dataset mnist --out walk.png
        trustkit gen arithmetic --model conv-vae --dataset faces --attribute gender=female --out female.png
        trustkit gen eval --model dcgan --dataset mnist --data-root ../shared/data

    Images are [0, 1] everywhere. Metrics are offline: the "domain FID" uses a trustkit classifier's
    features and is not comparable with published (Inception) FIDs.
    """,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _classifier(help: str) -> opt.Decorator:  # noqa: A002
    return click.option("--classifier", default="cnn", show_default=True, help=help)


_trained_model = opt.compose(opt.model(MODEL_SPEC_HELP, required=True), opt.dataset(DATASET_HELP, default=None))
_report_out = opt.out("Folder that receives <run-id>/report.html, results.csv, history.csv and run.json.")


def _eval_options(fn: Any) -> Any:
    for option in reversed([
        opt.n("Generated samples (and at most as many test images) for FID, KID, precision/recall.", default=2000,
              short=False),
        click.option("--iw-samples", type=int, default=100, show_default=True,
                     help="VAEs: importance samples K of the NLL bound (larger = tighter, slower)."),
        click.option("--nll-images", type=int, default=2000, show_default=True,
                     help="VAEs: test images for the ELBO/NLL (0 = the whole test split)."),
        _classifier("Zoo classifier whose penultimate features define the domain FID (trained and cached "
                    "on first use)."),
    ]):
        fn = option(fn)
    return fn


def _eval_config(n: int, iw_samples: int, nll_images: int, classifier: str, seed: int) -> Any:
    from trustkit.generative.evaluate import GenEvalConfig

    _positive(n=n, iw_samples=iw_samples)
    return GenEvalConfig(n=n, iw_samples=iw_samples, nll_images=None if nll_images == 0 else nll_images,
                         classifier=classifier, seed=seed).validate()


def _print_metrics(result: Any) -> None:
    """One row per metric: its value, unit and sample count."""
    if len(result.metrics):
        values = {"value": lambda row: f"{row['value']:.4g}", "unit": lambda row: str(row["unit"]),
                  "n": lambda row: str(row["n"])}
        print_table(result.metrics, ["metric"], values, justify={"unit": "left"},
                    title=f"{result.run_info['model']['arch']} on {result.run_info['config']['dataset']}")


@gen.command()
@opt.model("Generative model to train (see 'trustkit gen list').", required=True)
@opt.dataset("digits (embedded), mnist, cifar10 or faces.")
@opt.epochs("Passes over the training set (default: per model family and data set).")
@opt.batch_size("Mini-batch size (default 32 on digits, 128 on MNIST/CIFAR, 64 on faces).", default=None)
@opt.lr("Adam learning rate (default: the model's paper value, e.g. 2e-4 for DCGAN).")
@click.option("--latent-dim", type=int, help="Length of the latent vector z (default: per model and image size).")
@click.option("--width", type=int, help="Base channel count of convolutional models (default: per image size).")
@opt.beta("VAEs: weight of the KL term (1 = standard VAE; beta-vae defaults to 4).")
@opt.seed("Seed for initialisation, shuffling and sampling.")
@opt.device()
@opt.data_options(download_help="Fetch a missing MNIST/CIFAR-10 with torchvision (needs internet).")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="Save the model here (one .safetensors file) instead of the store entry gen-<model>-<dataset>.")
@click.option("--eval/--no-eval", "evaluate", default=True, show_default=True,
              help="Measure domain FID, KID, precision/recall, coverage (and NLL for VAEs) after training.")
@_eval_options
@_report_out
def train(model: str, dataset: str, epochs: int | None, batch_size: int | None, lr: float | None,
          latent_dim: int | None, width: int | None, beta: float | None, seed: int, device: str,
          data_root: str | None, download: bool, checkpoint: str | None, evaluate: bool, n: int, iw_samples: int,
          nll_images: int, classifier: str, out: str) -> None:
    """Train a generative model, store it, and write a report (loss curves, samples per epoch, metrics).

    \b
        trustkit gen train --model dcgan --dataset digits --epochs 30
        trustkit gen train --model vae --dataset mnist --data-root ../shared/data --epochs 10
        trustkit gen train --model wgan-gp --dataset faces --data-root ../shared/data --width 32
    """
    from trustkit.errors import InvalidArgumentError
    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.engine import run_gen_train

    GENERATIVE_MODELS.canonical(model)
    _positive(epochs=epochs, batch_size=batch_size, latent_dim=latent_dim, width=width)
    if lr is not None and lr <= 0:
        raise InvalidArgumentError(f"--lr must be > 0, got {lr}")
    if beta is not None and beta < 0:
        raise InvalidArgumentError(f"--beta must be >= 0, got {beta}")
    eval_config = _eval_config(n, iw_samples, nll_images, classifier, seed)
    options = {"latent_dim": latent_dim, "width": width, "beta": beta}
    result = run_gen_train(model, dataset, options=options, seed=seed, device=device, data_root=data_root,
                           download=download, checkpoint=checkpoint, evaluate=evaluate, eval_config=eval_config,
                           out=out, epochs=epochs, batch_size=batch_size, lr=lr)
    _print_metrics(result)
    timings = result.run_info["timings_seconds"]
    click.echo(f"trained {len(result.history)} epochs in {timings['train']:.1f} s "
               f"({timings['seconds_per_epoch']:.1f} s/epoch); checkpoint: {result.checkpoint}")
    click.echo(f"report: {result.report}")


@gen.command()
@_trained_model
@opt.n("Number of samples (ignored with --per-class).", default=64, short=False)
@click.option("--class", "classes", multiple=True,
              help="Conditional models: class(es) to generate, by name or number; repeat or comma-separate.")
@click.option("--per-class", is_flag=True, help="Conditional models: a grid with one row per class.")
@click.option("--columns", type=int, default=8, show_default=True, help="Images per grid row.")
@opt.seed("Seed of the latents.")
@opt.device()
@opt.out("PNG file to write the grid to.", default="samples.png", file=True)
def sample(model: str, dataset: str | None, n: int, classes: tuple[str, ...], per_class: bool, columns: int,
           seed: int, device: str, out: str) -> None:
    """Draw samples from a trained model and save them as one PNG grid.

    \b
        trustkit gen sample --model dcgan --dataset mnist --n 64 --out dcgan.png
        trustkit gen sample --model cgan --dataset mnist --per-class --out grid.png
        trustkit gen sample --model acgan --dataset faces --class female --n 16 --out women.png
    """
    import torch

    from trustkit.errors import InvalidArgumentError
    from trustkit.generative.images import grid, save_png

    _positive(n=n, columns=columns)
    loaded = _load(model, dataset, device)
    generative = loaded.model
    class_names = loaded.metadata.get("class_names", [])
    labels = None
    if (classes or per_class) and not generative.conditional:
        raise InvalidArgumentError(f"'{loaded.arch}' is not class-conditional; drop --class/--per-class or use "
                                   "cvae, cgan or acgan")
    if per_class:
        labels = torch.arange(generative.num_classes).repeat_interleave(columns)
    elif classes:
        chosen = _class_labels(classes, class_names)
        labels = torch.tensor(chosen).repeat_interleave(-(-n // len(chosen)))[:n]
    count = n if labels is None else len(labels)
    images = generative.sample(count, labels, generator=torch.Generator().manual_seed(seed))
    path = save_png(grid(images, columns), out)
    click.echo(f"{count} samples from {loaded.name} -> {path}")


@gen.command()
@_trained_model
@click.option("--pairs", type=int, default=6, show_default=True, help="Number of strips (start/end pairs).")
@opt.steps("Images per strip, ends included.", default=10)
@click.option("--path", "method", type=click.Choice(["auto", "slerp", "linear"]), default="auto", show_default=True,
              help="Path between latents: slerp (spherical, for Gaussian priors) or linear; auto picks.")
@click.option("--images", "between_images", is_flag=True,
              help="AE/VAE: walk between the codes of pairs of test images instead of random latents.")
@opt.data_root()
@opt.seed("Seed of the latents / image pairs.")
@opt.device()
@opt.out("PNG file to write the strips to.", default="interpolation.png", file=True)
def interpolate(model: str, dataset: str | None, pairs: int, steps: int, method: str, between_images: bool,
                data_root: str | None, seed: int, device: str, out: str) -> None:
    """Walk the latent space between pairs of points; one strip per pair.

    \b
        trustkit gen interpolate --model vae --dataset mnist --data-root ../shared/data --images
        trustkit gen interpolate --model dcgan --dataset faces --pairs 4 --steps 12 --out walk.png
    """
    import torch

    from trustkit.data import load_dataset
    from trustkit.generative.images import save_png, strips
    from trustkit.generative.latent import interpolate as walk
    from trustkit.generative.latent import random_interpolations

    _positive(pairs=pairs)
    loaded = _load(model, dataset, device)
    generative = loaded.model
    if between_images:
        if not generative.has_encoder:
            from trustkit.errors import InvalidArgumentError

            raise InvalidArgumentError(f"'{loaded.arch}' has no encoder; drop --images or use an autoencoder/VAE")
        test_set = load_dataset(loaded.dataset, "test", data_root)
        index = torch.randperm(len(test_set), generator=torch.Generator().manual_seed(seed))[:2 * pairs]
        x, y = test_set.tensors(index)
        labels = y.to(generative.device) if generative.conditional else None
        with torch.no_grad():
            z = generative.encode(x.to(generative.device), labels)
        strip_labels = None if labels is None else labels[:pairs]
        result = walk(generative, z[:pairs], z[pairs:2 * pairs], steps, method=method, labels=strip_labels)
    else:
        result = random_interpolations(generative, pairs, steps, seed=seed, method=method)
    path = save_png(strips(result), out)
    click.echo(f"{len(result)} interpolation strips of {steps} images from {loaded.name} -> {path}")


@gen.command()
@_trained_model
@click.option("--attribute", "-a", required=True,
              help="NAME=VALUE or NAME>=VALUE: gender=female, age>=60, race=asian (faces), class=3 (any data set).")
@opt.alpha("Multiples α of the attribute vector (default -2,-1,0,1,2).", dest="alphas", several=True)
@click.option("--rows", type=int, default=6, show_default=True, help="Start points (rows of the output).")
@_classifier("GANs: zoo classifier that labels samples to find the class vector.")
@opt.data_root()
@opt.seed("Seed of the sampled latents.")
@opt.device()
@opt.out("PNG file: one row per start point, one column per α (encoder models: input image first).",
         default="arithmetic.png", file=True)
def arithmetic(model: str, dataset: str | None, attribute: str, alphas: tuple[str, ...], rows: int,
               classifier: str, data_root: str | None, seed: int, device: str, out: str) -> None:
    """Latent arithmetic z' = z + α·v, v = mean latent with the attribute − mean latent without.

    AE/VAE models compute v from labelled training images (UTKFace age/gender/race for faces) and start
    from test images without the attribute; GANs compute v from their own samples as labelled by a
    classifier (class attributes only).

    \b
        trustkit gen arithmetic --model conv-vae --dataset faces --attribute gender=female --data-root ../shared/data
        trustkit gen arithmetic --model vae --dataset faces --attribute "age>=60" --alpha 0,1,2,3
        trustkit gen arithmetic --model vae --dataset digits --attribute class=0
    """
    import torch

    from trustkit.generative.images import save_png, strips
    from trustkit.generative.run import attribute_arithmetic

    values = _floats(alphas, "--alpha") if alphas else [-2.0, -1.0, 0.0, 1.0, 2.0]
    loaded = _load(model, dataset, device)
    result = attribute_arithmetic(loaded, attribute, values, rows=rows, seed=seed, data_root=data_root,
                                  classifier=classifier)
    shown = result.images
    if result.originals is not None:
        shown = torch.cat([result.originals[:, None], result.images], dim=1)
    path = save_png(strips(shown), out)
    info = result.info
    click.echo(f"attribute '{info['attribute']}': {info['source']}; ‖v‖ = {info['vector_norm']:.3f}; "
               f"{info['rows']} rows × α ∈ {{{', '.join(f'{a:g}' for a in values)}}} -> {path}")


@gen.command(name="eval")
@_trained_model
@_eval_options
@opt.seed("Seed of the samples and subsets.")
@opt.device()
@opt.data_root()
@_report_out
def evaluate(model: str, dataset: str | None, n: int, iw_samples: int, nll_images: int, classifier: str, seed: int,
             device: str, data_root: str | None, out: str) -> None:
    """Measure a trained model (domain FID, KID, precision/recall, coverage, VAE NLL) and write a report.

    \b
        trustkit gen eval --model dcgan --dataset mnist --data-root ../shared/data
        trustkit gen eval --model vae --dataset mnist --data-root ../shared/data --nll-images 0 --iw-samples 1000
    """
    from trustkit.engine import run_gen_eval

    eval_config = _eval_config(n, iw_samples, nll_images, classifier, seed)
    result = run_gen_eval(model, dataset, eval_config=eval_config, seed=seed, device=device, data_root=data_root,
                          out=out)
    _print_metrics(result)
    click.echo(f"report: {result.report}")


@gen.command(name="list")
def list_() -> None:
    """Show the generative models and the trained ones in the store."""
    from rich.console import Console
    from rich.table import Table

    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.models.store import store_dir

    console = Console()
    table = Table(title="generative models", title_justify="left")
    for column in ("name", "aliases", "description"):
        table.add_column(column)
    for entry in GENERATIVE_MODELS.entries():
        table.add_row(entry.name, ", ".join(entry.aliases), entry.summary)
    console.print(table)
    stored = Table(title="trained generative models", title_justify="left", caption=f"in {store_dir()}")
    for column in ("store entry", "epochs", "train seconds", "created"):
        stored.add_column(column)
    from trustkit.errors import CheckpointError
    from trustkit.models.store import list_checkpoints, read_metadata

    for weights in list_checkpoints("gen-"):
        try:
            meta = read_metadata(weights)
            stored.add_row(weights.stem, str(len(meta.get("history", []))),
                           str(meta.get("metrics", {}).get("train_seconds", "?")), meta.get("created", "?"))
        except CheckpointError:
            stored.add_row(weights.stem, "unreadable", "", "")
    console.print(stored)
