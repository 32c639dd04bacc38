"""``trustkit certify``: certified ℓ2 robustness by randomized smoothing (Cohen et al. 2019)."""
from __future__ import annotations

import click

from trustkit.cli import options as opt
from trustkit.cli.tables import print_flags, print_table


def _floats(values: tuple[str, ...], option: str) -> tuple[float, ...]:
    from trustkit.errors import InvalidArgumentError

    found = []
    for item in opt.split_list(values):
        try:
            found.append(float(item))
        except ValueError:
            raise InvalidArgumentError(f"cannot read {option} '{item}'; write numbers, e.g. {option} 0.25,0.5") from None
    return tuple(found)


@click.command(context_settings=opt.CONTEXT)
@opt.model_options("Base classifiers, comma-separated: a zoo name means its Gaussian-trained store entry "
                   "NAME-DATASET-gaussian-sigmaσ (trained on first use, as `trustkit train --noise σ`); a store "
                   "entry or .safetensors checkpoint is used as given at every --sigma.")
@opt.dataset()
@click.option("--sigma", "sigmas", multiple=True,
              help="Noise levels σ (pixel scale [0, 1]), repeatable or comma-separated. Default: 0.25.")
@click.option("--n0", type=int, default=100, show_default=True,
              help="Noise samples per image that choose the class (Cohen et al.'s N0).")
@opt.n("Noise samples per image that bound the class probability (Cohen et al. use 100,000; the default fits "
       "2 CPU cores and certifies radii up to σ·Φ⁻¹(α^(1/N)): 2.46σ at N = 1,000, 3.20σ at 10,000).",
       default=1000, short=False)
@opt.alpha("Failure probability of each certificate and PREDICT's test level (default 0.001, as Cohen et al.).")
@click.option("--n-images", type=int, default=200, show_default=True, help="Test images (a seeded subset).")
@click.option("--radius", "radii", multiple=True,
              help="ℓ2 radii of results.csv, repeatable or comma-separated (default: steps of 0.25 up to the "
                   "largest radius N can certify).")
@click.option("--attack-n", type=int, default=20, show_default=True,
              help="Images of the consistency check (PGD with EOT on the smoothed classifier); 0 skips it.")
@click.option("--attack-fraction", "attack_fractions", multiple=True,
              help="Budgets of the consistency check as fractions of each certified radius, comma-separated; below "
                   "1 must never change a prediction, above 1 shows the attack's strength. Default: 0.5,0.9,1.5.")
@opt.attack_steps("PGD steps of the consistency check.", default=20)
@click.option("--attack-samples", type=int, default=16, show_default=True,
              help="Noise samples per PGD step (EOT) of the consistency check.")
@opt.batch_size("Noisy images per forward pass.", default=1000)
@opt.device()
@opt.seed("Seed of the test sample and every noise draw.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, certificates.csv, attack.csv and run.json.")
@opt.data_options()
@opt.run_options
def certify(model: str, trust_code: bool, dataset: str, sigmas: tuple[str, ...], n0: int, n: int, alpha: float | None,
            n_images: int, radii: tuple[str, ...], attack_n: int, attack_fractions: tuple[str, ...],
            attack_steps: int, attack_samples: int, batch_size: int, device: str, seed: int, out: str,
            data_root: str | None, download: bool, jobs: int, no_cache: bool, backend: str,
            ray_address: str | None) -> None:
    """How far is the model provably robust? Randomized smoothing certificates (Cohen et al. 2019).

    The smoothed classifier answers with the class the model returns most often under Gaussian noise of level σ.
    For each test image, CERTIFY returns that class and an ℓ2 radius R = σ·Φ⁻¹(p̲A) within which no perturbation
    can change the answer (p̲A: a lower confidence bound of the class's probability from N noisy samples; each
    certificate fails with probability at most α), or abstains. The report gives certified accuracy against
    radius, the average certified radius (ACR), abstentions, the radius limit of N, the published MNIST anchor
    beside ours, and a consistency check: PGD with EOT on the smoothed classifier must never change a certified
    prediction inside its radius. Writes reports/<run-id>/report.html, results.csv, certificates.csv, attack.csv.

    \b
        trustkit certify                                      # cnn on digits, σ 0.25, N 1,000: ~1 min
        trustkit certify --sigma 0.25,0.5 --n 10000
        trustkit certify --dataset mnist --data-root ../data --sigma 0.25,0.5,1.0 --n 10000 --n-images 500
        trustkit certify --model cnn-mnist-gaussian-sigma0.5 --dataset mnist --data-root ../data --sigma 0.5
    """
    from trustkit.engine import run
    from trustkit.errors import InvalidArgumentError
    from trustkit.studies.certify import CertifyConfig, certify_study

    alpha = 0.001 if alpha is None else alpha

    opt.check_backend(backend, ray_address)
    models = tuple(opt.split_list([model]))
    if not models:
        raise InvalidArgumentError("no model given; name one, e.g. --model cnn")
    config = CertifyConfig(models=models, dataset=dataset, sigmas=_floats(sigmas, "--sigma") or (0.25,), n0=n0, n=n,
                           alpha=alpha, n_images=n_images, radii=_floats(radii, "--radius") or None,
                           attack_n=attack_n,
                           attack_fractions=_floats(attack_fractions, "--attack-fraction") or (0.5, 0.9, 1.5),
                           attack_steps=attack_steps, attack_samples=attack_samples, seed=seed,
                           batch_size=batch_size, device=device, data_root=data_root, download=download,
                           trust_code=trust_code, out=out, use_cache=not no_cache, jobs=jobs, backend=backend,
                           ray_address=ray_address)
    result = run(certify_study(config), out=out, device=device, backend=backend, jobs=jobs, use_cache=not no_cache,
                 ray_address=ray_address)
    print_certify(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_certify(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """One line per model × σ: certified accuracy at a few radii, ACR, abstentions; then the flags."""
    results = result.results
    if len(results):
        radii = sorted(results["radius"].unique())
        shown = [r for r in radii if r in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)] or radii[:4]
        rows = results.drop_duplicates(["model", "sigma"])[["model", "sigma", "acr", "abstentions", "n_images"]]
        values = {f"r={r:g}": (lambda r: lambda row: _at(results, row, r))(r) for r in shown}
        values.update({"ACR": lambda row: f"{row['acr']:.3f}",
                       "abstained": lambda row: f"{int(row['abstentions'])}/{int(row['n_images'])}"})
        print_table(rows, ["model", "sigma"], values, title="certified accuracy (randomized smoothing)")
    print_flags(result.checks)


def _at(results, row, radius: float) -> str:  # noqa: ANN001 - DataFrame, row
    match = results[(results["model"] == row["model"]) & (results["sigma"] == row["sigma"])
                    & (results["radius"] == radius)]
    if not len(match):
        return "–"
    value = match.iloc[0]
    return f"{value['certified_accuracy']:.1%}" + ("" if value["reachable"] else "*")
