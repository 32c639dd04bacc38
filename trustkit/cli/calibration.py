"""``trustkit bench calibration``: are the model's confidences right, clean and under attack, and does its
confidence fall on images of another kind (out-of-distribution detection)?"""
from __future__ import annotations

import click

from trustkit.cli import options as opt
from trustkit.cli.bench import MODEL_HELP, bench_workload
from trustkit.cli.tables import print_flags, print_table


@bench_workload("calibration")
@click.command(context_settings=opt.CONTEXT)
@opt.model_options(MODEL_HELP)
@opt.dataset()
@click.option("--ood", "ood", multiple=True,
              help="Out-of-distribution sets, repeatable or comma-separated: any data set (mnist, cifar10, faces, "
                   "olivetti, digits, folder:PATH ...; converted to the model's input shape: colour to grey by "
                   "luminance or grey to colour, antialiased resize) or noise (uniform noise images, seeded; needs "
                   "no data). Default: noise.")
@opt.attack("attack", "Attack that makes the adversarial images (any trustkit attack; run for its whole budget).",
            several=False, default="pgd")
@opt.eps("Its budget (default: the middle of the data set's grid, e.g. 0.2 on digits, 4/255 on CIFAR-10).",
         several=False)
@opt.norm()
@click.option("--bins", type=int, default=15, show_default=True,
              help="Equal-width confidence bins of ECE, MCE and the reliability diagrams (Guo et al. use 15).")
@opt.n("Test images (seeded random subset). Default: the data set's (all 360 of digits, 1,000 of MNIST).")
@click.option("--n-ood", type=int, help="Images of each OOD set (seeded subset). Default: as many as test images.")
@opt.batch_size("Images per forward pass and attack batch.", default=256)
@opt.device()
@opt.seed("Seed of the test subset, the OOD subsets and noise, and the attack's random start.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, reliability.csv, ood.csv and run.json.")
@opt.data_options()
@opt.run_options
def bench_calibration(model: str, trust_code: bool, dataset: str, ood: tuple[str, ...], attack: str,
                      eps: str | None, norm: str, bins: int, n: int | None, n_ood: int | None, batch_size: int,
                      device: str, seed: int, out: str, data_root: str | None, download: bool, jobs: int,
                      no_cache: bool, backend: str, ray_address: str | None) -> None:
    """Can the model's confidence be trusted? Calibration, clean and under attack, and OOD detection.

    Calibration: of the images a calibrated model answers with 80% confidence, 80% are right. The expected
    calibration error (ECE, Guo et al. 2017) puts images into --bins equal-width bins by confidence (the softmax
    probability of the predicted class) and averages |accuracy − mean confidence| over the bins, weighted by
    their share of images: 0 is perfect, 0.1 means confidences are off by 10 points on average. MCE is the
    worst bin's gap; NLL (nats) and the Brier score (0 to 2) score the whole probability vector. All are
    measured on the test images and on their adversarial versions (--attack at --eps): a model that stays
    confident while it is fooled is flagged.

    OOD detection: does the model's confidence fall on images of another kind (--ood)? Two scores, both higher
    on images the model considers in-distribution: the max softmax probability (Hendrycks & Gimpel 2017) and
    the energy score −E(x) = logsumexp(logits) (Liu et al. 2020, sign flipped so that higher means
    in-distribution). AUROC 1 separates the test images from the OOD images perfectly, 0.5 is chance;
    FPR at 95% TPR is the share of OOD images still accepted when 95% of test images are.

    Writes reports/<run-id>/report.html (reliability diagrams, confidence and score histograms, ROC curves),
    results.csv, reliability.csv, ood.csv and run.json; cells are cached, so reruns and added OOD sets are quick.

    \b
        trustkit bench calibration                                   # cnn on digits vs noise, seconds
        trustkit bench calibration --model softmax,mlp,cnn --eps 0.1
        trustkit bench calibration --model cnn --dataset mnist --ood faces,cifar10,noise --data-root ../data
    """
    from trustkit.engine import run
    from trustkit.studies.calibration import CalibrationConfig, calibration_study

    opt.check_backend(backend, ray_address)
    config = CalibrationConfig(models=tuple(opt.split_list([model])), dataset=dataset,
                               ood=tuple(opt.split_list(ood) or ["noise"]), attack=attack, eps=eps, norm=norm,
                               bins=bins, n=n, n_ood=n_ood, seed=seed, batch_size=batch_size, device=device,
                               data_root=data_root, download=download, trust_code=trust_code, out=out,
                               use_cache=not no_cache, jobs=jobs, backend=backend, ray_address=ray_address)
    result = run(calibration_study(config), out=out, device=device, backend=backend, jobs=jobs,
                 use_cache=not no_cache, ray_address=ray_address)
    print_calibration(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_calibration(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """One line per model × condition (accuracy, ECE, MCE, NLL, Brier), one per model × OOD set × score
    (AUROC, FPR at 95% TPR); then the flags."""
    results, ood = result.results, result.tables["ood.csv"]
    if len(results):
        values = {"accuracy": lambda r: f"{r['accuracy']:.1%}", "ECE": lambda r: f"{r['ece']:.1%}",
                  "MCE": lambda r: f"{r['mce']:.1%}", "NLL": lambda r: f"{r['nll']:.3f}",
                  "Brier": lambda r: f"{r['brier']:.3f}", "confidence": lambda r: f"{r['mean_confidence']:.1%}"}
        print_table(results, ["model", "condition"], values, title="calibration, clean and under attack")
    if len(ood):
        values = {"AUROC": lambda r: f"{r['auroc']:.3f}", "FPR@95TPR": lambda r: f"{r['fpr_at_95_tpr']:.1%}"}
        print_table(ood, ["model", "ood_dataset", "score"], values,
                    title="OOD detection (higher score = in-distribution)", headers={"ood_dataset": "OOD set"})
    print_flags(result.checks)
