"""``trustkit detect build|train|eval``, and ``trustkit bench fakes`` (which shares their options)."""
from __future__ import annotations

from typing import Any, Callable

import click

from trustkit.cli import options as opt
from trustkit.cli.bench import bench_workload
from trustkit.cli.tables import blank, print_table
# Named here for --help, which must not import torch (tests/test_cli.py checks they match the real lists).
DEFAULT_GENERATORS = ('dcgan', 'dcgan-resize', 'wgan-gp', 'conv-vae')  # trustkit.detection.data.DEFAULT_GENERATORS
PERTURBATIONS = ('jpeg-90', 'jpeg-75', 'jpeg-50', 'resize-0.75', 'resize-0.5', 'blur-0.5', 'blur-1.0', 'noise-0.02', 'noise-0.05')  # trustkit.detection.perturb.PERTURBATIONS


def _detector_option(dest: str, help: str, *, default: str | None = None) -> Callable[..., Any]:  # noqa: A002
    """--detector: a detector family to train (with a default) or, required, a stored detector to use."""
    given = {"required": True} if default is None else {"default": default, "show_default": True}
    return click.option("--detector", dest, help=help, **given)


def data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options that pick the real/fake data (shared by build, train, eval and bench fakes)."""
    return opt.compose(
        opt.dataset("Real images: faces (UTKFace 64×64), or any data set such as digits, mnist, cifar10.",
                    default="faces"),
        click.option("--generators", "-g", multiple=True,
                     help=f"Generators whose fakes are used, comma-separated (default {','.join(DEFAULT_GENERATORS)}); "
                          "missing ones are trained first with `trustkit gen train` defaults."),
        click.option("--n-train", type=int, default=2000, show_default=True, help="Real (and fake) training images."),
        click.option("--n-val", type=int, default=500, show_default=True, help="Validation images (threshold calibration)."),
        click.option("--n-test", type=int, default=1000, show_default=True, help="Test images per class."),
        opt.seed("Seed for subsets, samples and training."),
        opt.device("auto, cpu, cuda or mps."),
        opt.data_root("Folder with local data sets."),
        opt.no_cache("Rebuild data and retrain detectors instead of reusing them."),
    )(function)


def eval_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options of the evaluation: detectors, evasion budgets and steps, degradations, report folder."""
    return opt.compose(
        click.option("--detectors", multiple=True, help="Detectors, comma-separated (default: cnn,spectral,dct; "
                     "also cnn-blur-jpeg, the CNN trained with random blur + JPEG)."),
        click.option("--train-on", multiple=True, help="Train the detectors on these generators only (comma-separated; "
                     "default: each generator); every generator is still tested."),
        click.option("--protocol", type=click.Choice(["cnndetection"]), default=None,
                     help="cnndetection: Wang et al. 2020 — cnn and cnn-blur-jpeg (unless --detectors) trained on "
                          "one generator (--train-on, default the first), tested on all; AP per test generator."),
        click.option("--no-realism", is_flag=True, help="Skip the domain FID of each generator against real images."),
        opt.eps("Evasion budgets (linf, pixel scale; default 1/255,2/255,4/255,8/255); 'none' skips the evasion."),
        opt.attack_steps("APGD steps of the evasion attacks (margin and cross-entropy; PGD-10 runs beside them).",
                         default=100),
        click.option("--degradations", multiple=True,
                     help=f"Degradations to test (default all: {', '.join(PERTURBATIONS)}); 'none' skips them."),
        opt.out("Folder that receives <run-id>/report.html, results.csv and run.json."),
        opt.placement_options,
    )(function)


def fakes_config(**options: Any):  # noqa: ANN201 - FakesConfig
    from trustkit.detection.run import FakesConfig

    split = opt.split_list
    config = FakesConfig(dataset=options["dataset"], n_train=options["n_train"], n_val=options["n_val"],
                         n_test=options["n_test"], seed=options["seed"], device=options["device"],
                         data_root=options["data_root"], use_cache=not options["no_cache"])
    if options.get("generators"):
        config.generators = split(options["generators"])
    if options.get("detectors"):
        config.detectors = split(options["detectors"])
    if options.get("train_on"):
        config.train_on = split(options["train_on"])
    if options.get("protocol"):
        config.protocol = options["protocol"]
    if options.get("no_realism"):
        config.realism = False
    if options.get("eps"):
        chosen = split(options["eps"])
        config.eps = [] if chosen == ["none"] else chosen
    if "attack_steps" in options:
        config.attack_steps = options["attack_steps"]
    if options.get("degradations"):
        chosen = split(options["degradations"])
        config.perturbations = [] if chosen == ["none"] else chosen
    if "out" in options:
        config.out = options["out"]
    for name in ("jobs", "backend", "ray_address"):
        if name in options:
            setattr(config, name, options[name])
    return config


def run_and_print(**options: Any) -> None:
    from trustkit.engine import run_fakes

    opt.check_backend(options["backend"], options["ray_address"])
    result = run_fakes(fakes_config(**options))
    if len(result.results):
        print_fakes(result.results)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_fakes(results: Any) -> None:
    """In-distribution AUC: one row per detector, one column per generator it was trained and tested on."""
    clean = results[(results["kind"] == "cross-generator") & (results["train_generator"] == results["test_generator"])]
    table = clean.pivot(index="detector", columns="test_generator", values="auc")
    frame = table.rename_axis(index="detector", columns=None).reset_index()
    values = {str(g): (lambda row, g=g: "–" if blank(row[g]) else f"{row[g]:.4f}") for g in table.columns}
    print_table(frame, ["detector"], values, title="in-distribution AUC (rows: detector, columns: generator)")
    cross = results[results["kind"] == "cross-generator"]
    if (cross["train_generator"] != cross["test_generator"]).any():  # generalisation: the CNNDetection headline
        table = cross.pivot_table(index=["detector", "train_generator"], columns="test_generator", values="ap")
        frame = table.rename_axis(columns=None).reset_index().rename(columns={"train_generator": "trained on"})
        values = {str(g): (lambda row, g=g: "–" if blank(row[g]) else f"{row[g]:.4f}") for g in table.columns}
        print_table(frame, ["detector", "trained on"], values,
                    title="AP on every generator (columns: test generator; any but the one it was trained on "
                          "is unseen)")


@click.group()
def detect() -> None:
    """Fake-image detection: build real/fake data, train detectors, evaluate them (trustkit bench fakes does all)."""


@detect.command()
@data_options
def build(**options: Any) -> None:
    """Build (and cache) real and generated images, training missing generators.

    \b
        trustkit detect build --dataset faces --data-root ../data --generators dcgan,wgan-gp,conv-vae
    """
    from trustkit.detection.data import build_fake_set

    config = fakes_config(**options)
    images = build_fake_set(config.dataset, config.generators, n_train=config.n_train, n_val=config.n_val,
                            n_test=config.n_test, seed=config.seed, data_root=config.data_root, device=config.device,
                            use_cache=config.use_cache)
    for generator in images.generators:
        click.echo(f"{generator}: {sum(len(v) for v in images.fake[generator].values())} fakes from {images.sources[generator]}")
    click.echo(f"real: {sum(len(v) for v in images.real.values())} images of {images.dataset}; cache key {images.key}")


@detect.command()
@data_options
@_detector_option("detector_name", "cnn, spectral or dct.", default="cnn")
@click.option("--generator", "generator_name", required=True, help="Train on real images vs fakes of this generator.")
def train(detector_name: str, generator_name: str, **options: Any) -> None:
    """Train one detector on real images vs one generator's fakes and store it (det-<detector>-<data>-<generator>).

    \b
        trustkit detect train --detector spectral --generator dcgan --data-root ../data
    """
    from trustkit.detection import DETECTORS
    from trustkit.detection.data import build_fake_set
    from trustkit.detection.run import train_detector
    from trustkit.generative import GENERATIVE_MODELS
    from trustkit.runtime import select_device

    config = fakes_config(**options)
    name, generator = DETECTORS.canonical(detector_name), GENERATIVE_MODELS.canonical(generator_name)
    images = build_fake_set(config.dataset, [generator], n_train=config.n_train, n_val=config.n_val,
                            n_test=config.n_test, seed=config.seed, data_root=config.data_root, device=config.device,
                            use_cache=config.use_cache)
    trained = train_detector(name, images, generator, seed=config.seed, device=select_device(config.device),
                             use_cache=config.use_cache)
    v = trained.validation
    click.echo(f"{name} vs {generator}: validation AUC {v['auc']:.4f}, AP {v['ap']:.4f}, accuracy {v['accuracy']:.1%} "
               f"at threshold {trained.threshold:.3f}{' (from the store)' if trained.cached else ''}")


@detect.command(name="eval")
@data_options
@eval_options
def evaluate(**options: Any) -> None:
    """Train (or reuse) every detector on every generator and measure: in-distribution and cross-generator
    AUC/AP/accuracy, degradations, the generators' domain FID, and white-box evasion (APGD on the logit margin and
    on cross-entropy, PGD-10, 8-bit re-quantised, the strongest per image); writes an HTML + CSV report.

    \b
        trustkit detect eval --dataset faces --data-root ../data
        trustkit detect eval --dataset digits --generators dcgan,conv-vae --n-train 500 --n-test 300
        trustkit detect eval --data-root ../data --protocol cnndetection --train-on dcgan
    """
    run_and_print(**options)


@detect.command()
@click.argument("path", type=click.Path())
@_detector_option("detector", "Stored detector: a det-DETECTOR-DATASET-GENERATOR store entry (`trustkit list` shows "
                  "them; `trustkit detect train` or `bench fakes` stores them) or a detector .safetensors file.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False),
              help="Where to write the scores (default: scores.csv in the current folder).")
@opt.device("auto, cpu, cuda or mps.")
def score(path: str, detector: str, csv_path: str | None, device: str) -> None:
    """Score your own images: P(fake) per image of PATH (a file or a folder, searched recursively) from a stored
    detector, and the verdict at the threshold calibrated on its validation data.

    Images are converted to the detector's channels; a size other than its training resolution is centre-cropped
    and resized (Lanczos), marked in the `resized` column. Unreadable files are skipped and counted. Writes a CSV
    of file, p_fake, verdict, threshold, resized, width, height. A detector only knows the generators it was
    trained on: a low P(fake) on an image from another generator is no evidence it is real (docs/detection.md).

    \b
        trustkit detect score ./my-images --detector det-cnn-faces-dcgan
        trustkit detect score photo.png --detector det-dct-faces-wgan-gp --csv photo.csv
    """
    from trustkit.detection.score import score_images
    from trustkit.runtime import select_device
    from trustkit.tables import write_csv

    frame, summary = score_images(path, detector, device=select_device(device))
    target = csv_path or "scores.csv"
    write_csv(frame, target)
    click.echo(f"{summary['detector']} detector ({summary['trained_on']}, threshold {summary['threshold']:.4f}): "
               f"{summary['fake']} of {summary['scored']} image(s) called fake"
               + (f"; {summary['resized']} resized to {summary['size']}" if summary["resized"] else "")
               + (f"; {summary['skipped']} unreadable file(s) skipped" if summary["skipped"] else ""))
    click.echo(f"scores: {target}")


@bench_workload("fakes")
@click.command()
@data_options
@eval_options
def bench_fakes(**options: Any) -> None:
    """Can generated images be caught, and can the detectors be evaded? Trains the generators (if missing),
    builds balanced real/fake sets, trains the CNN, spectral and DCT detectors on each generator, and reports
    in-distribution and cross-generator AUC and AP, degradations, the generators' domain FID and the strongest
    white-box evasion (same as `trustkit detect eval`; --protocol cnndetection for Wang et al.'s protocol).

    \b
        trustkit bench fakes --data-root ../data                      # UTKFace faces, four generators
        trustkit bench fakes --dataset digits --generators dcgan,conv-vae --n-train 500 --n-test 300
    """
    run_and_print(**options)
