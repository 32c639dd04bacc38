"""``trustkit bench corruptions``: accuracy under the 15 common corruptions of Hendrycks & Dietterich (2019) at
severities 1-5, and the mean corruption error (mCE) relative to a named baseline model."""
from __future__ import annotations

import click

from trustkit.cli import options as opt
from trustkit.cli.bench import MODEL_HELP, bench_workload
from trustkit.cli.tables import print_flags, print_table

# trustkit.corruptions.common's names, repeated here so that --help imports nothing heavy
CORRUPTION_NAMES = ("gaussian-noise, shot-noise, impulse-noise (noise); defocus-blur, glass-blur, motion-blur, "
                    "zoom-blur (blur); snow, frost, fog, brightness (weather); contrast, elastic-transform, pixelate, "
                    "jpeg-compression (digital)")


@bench_workload("corruptions")
@click.command(context_settings=opt.CONTEXT)
@opt.model_options(MODEL_HELP + " Several: comma-separated.")
@opt.dataset()
@click.option("--baseline", default="softmax", show_default=True,
              help="The model every CE is relative to (CE = 100% means as many errors as it makes); any model spec. "
                   "A zoo name is trained first when missing. The default, the one-layer softmax classifier, is "
                   "this zoo's AlexNet: the simplest model, trained in seconds on every data set.")
@click.option("--corruption", "corruptions", multiple=True,
              help=f"Corruption types, repeatable or comma-separated (underscores work too): {CORRUPTION_NAMES}. "
                   "Default: all 15.")
@click.option("--severity", "severities", multiple=True,
              help="Severities 1 (mild) to 5 (strong), repeatable or comma-separated. Default: 1,2,3,4,5.")
@opt.n("Test images (seeded random subset, the same for every model). Default: the data set's (all 360 of "
       "digits, 1,000 of MNIST).")
@opt.batch_size("Images per forward pass.", default=256)
@opt.device()
@opt.seed("Seed of the test subset and of every image's corruption (noise, frost crop, snow, displacements).")
@opt.out("Folder that receives <run-id>/report.html, results.csv, summary.csv, ce.csv and run.json.")
@opt.data_options()
@opt.run_options
def bench_corruptions(model: str, trust_code: bool, dataset: str, baseline: str, corruptions: tuple[str, ...],
                      severities: tuple[str, ...], n: int | None, batch_size: int, device: str, seed: int, out: str,
                      data_root: str | None, download: bool, jobs: int, no_cache: bool, backend: str,
                      ray_address: str | None) -> None:
    """How does accuracy hold up under common corruptions? Noise, blur, weather and digital distortions.

    The 15 corruption types of Hendrycks & Dietterich (2019) at five severities each are generated here by the
    imagecorruptions-imaug package (Hendrycks' ImageNet-C code and parameters), on a seeded subset of test
    images; every model sees the very same corrupted images. Reported: accuracy per type and severity (a heat
    map per model), the corruption error CE_c = Σ_s E_s,c / Σ_s E_s,c(baseline), its mean over types (mCE) and
    the relative mCE, which counts only the errors added by the corruption (E_s,c − E_clean). A corruption whose
    accuracy rises with severity is flagged.

    The numbers are NOT comparable with the published CIFAR-10-C / MNIST-C files: the images are generated here
    with ImageNet-C's parameters at the images' own size (much stronger on 28×28 or 8×8 images than CIFAR-10-C's
    milder set), and the baseline is a model of this run, not AlexNet.

    \b
        trustkit bench corruptions                                 # cnn vs softmax on digits, all 15 × 5
        trustkit bench corruptions --model mlp,cnn --baseline softmax --severity 1,3,5
        trustkit bench corruptions --model cnn --dataset mnist --n 1000 --data-root ../data
        trustkit bench corruptions --corruption gaussian-noise,fog,pixelate --n 100
    """
    from trustkit.engine import run
    from trustkit.errors import InvalidArgumentError
    from trustkit.studies.corruptions import CorruptionsConfig, corruptions_study

    opt.check_backend(backend, ray_address)
    levels = []
    for text in opt.split_list(severities):
        try:
            levels.append(int(text))
        except ValueError:
            raise InvalidArgumentError(f"--severity takes integers from 1 to 5, got '{text}'; e.g. --severity 1,3,5") \
                from None
    names = [name.replace("_", "-") for name in opt.split_list(corruptions)]
    config = CorruptionsConfig(models=tuple(opt.split_list([model])), dataset=dataset, baseline=baseline,
                               **({"corruptions": tuple(names)} if names else {}),
                               **({"severities": tuple(levels)} if levels else {}), n=n, seed=seed,
                               batch_size=batch_size, device=device, data_root=data_root, download=download,
                               trust_code=trust_code, out=out, use_cache=not no_cache, jobs=jobs, backend=backend,
                               ray_address=ray_address)
    result = run(corruptions_study(config), out=out, device=device, backend=backend, jobs=jobs,
                 use_cache=not no_cache, ray_address=ray_address)
    print_corruptions(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_corruptions(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """One line per model (clean error, mean corruption error, mCE, relative mCE); then the flags."""
    summary = result.tables["summary.csv"]
    if len(summary):
        def pct(value: float) -> str:
            return "–" if value != value else f"{value:.1%}"

        values = {"clean error": lambda r: pct(r["clean_error"]),
                  "corruption error": lambda r: pct(r["mean_corruption_error"]),
                  "mCE": lambda r: pct(r["mce"]), "relative mCE": lambda r: pct(r["relative_mce"])}
        print_table(summary, ["model"], values,
                    title=f"common corruptions (mCE relative to {summary['baseline'].iloc[0]}; not comparable with "
                          "CIFAR-10-C)")
    print_flags(result.checks)
