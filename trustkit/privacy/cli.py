"""``trustkit privacy``: the privacy audit from the command line (``trustkit privacy audit ...``)."""
from __future__ import annotations

import math
from typing import Sequence

import click

from trustkit.cli_types import SEED

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _split(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@click.group(context_settings=CONTEXT)
def privacy() -> None:
    """Privacy audits: feature inversion per layer, membership inference, model inversion."""


@privacy.command(context_settings=CONTEXT)
@click.option("--model", "-m", default="cnn", show_default=True,
              help="Target classifier: zoo name (trained and cached on first use), store entry, .safetensors "
                   "checkpoint or (with --trust-code) package.module:factory (TorchScript cannot take feature hooks).")
@click.option("--trust-code", is_flag=True,
              help="Allow --model to be package.module:factory: it is code, and loading it runs it, so pass this "
                   "only if you trust its author. Zoo names and .safetensors checkpoints never need it.")
@click.option("--dataset", "-d", default="digits", show_default=True,
              help="digits (embedded; re-identification then names digit classes), mnist, olivetti (40 people: "
                   "identity re-identification), faces, cifar10.")
@click.option("--layers", "-l", "layers", multiple=True,
              help="Layers whose features are shared, repeatable or comma-separated: aliases (conv1, relu1, pool1, "
                   "relu2, fc1 ...) or module names (net.1). Default: every ReLU and pooling output.")
@click.option("--attacks", "-a", "attacks", multiple=True,
              help="Inversion attacks, comma-separated: white-box (optimisation + TV prior), inverse-net (learned "
                   "decoder, black-box), gen-prior (latent search through a trustkit VAE/GAN). Default: all three.")
@click.option("--n", "-n", "n", type=int, help="Victims: test images, balanced over classes (default 40 on "
              "olivetti — one per person — else 32).")
@click.option("--steps", type=int, default=300, show_default=True, help="White-box optimisation steps.")
@click.option("--restarts", type=int, help="White-box random restarts, best kept (default 2; 1 above 32×32).")
@click.option("--tv-weight", type=float, default=0.02, show_default=True, help="White-box total-variation weight λ.")
@click.option("--inverse-steps", type=int, help="Inverse-network training steps (default 1500 of 64 images; 600 of 32 "
              "above 32×32).")
@click.option("--prior", default="vae", show_default=True,
              help="Generator of the gen-prior attack: vae, conv-vae, dcgan, wgan-gp (trained on the training split "
                   "if missing), a store entry or a .safetensors file.")
@click.option("--prior-steps", type=int, default=300, show_default=True, help="Latent optimisation steps.")
@click.option("--reid-steps", type=int, help="Training steps of the re-identification classifier (default 1500; "
              "800 above 32×32).")
@click.option("--mitigations", default=None,
              help="Split-layer mitigations for the privacy/utility curve: noise:SIGMA (× feature std), dropout:P, "
                   "quant:BITS, comma-separated, or 'none'. Default: noise:0.5,noise:2,dropout:0.5,quant:2.")
@click.option("--mitigation-layer", help="Layer the mitigations act on (default: the first audited layer).")
@click.option("--membership/--no-membership", default=True, show_default=True, help="Run membership inference.")
@click.option("--membership-n", type=int, default=500, show_default=True, help="Members and non-members each.")
@click.option("--model-inversion/--no-model-inversion", default=True, show_default=True,
              help="Run MIFace class-representative model inversion.")
@click.option("--mi-classes", type=int, default=10, show_default=True, help="Classes MIFace rebuilds (the first K).")
@click.option("--mi-iter", type=int, default=300, show_default=True, help="MIFace iterations.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda or mps.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for victims, restarts and training.")
@click.option("--out", "-o", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives <run-id>/report.html, results.csv, layers.csv and run.json.")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Folder with local data sets (else $TRUSTKIT_DATA, else $TRUSTKIT_HOME/data).")
@click.option("--download", is_flag=True, help="Fetch a missing data set into the first data root (needs internet).")
def audit(model: str, trust_code: bool, dataset: str, layers: tuple[str, ...], attacks: tuple[str, ...], n: int | None, steps: int,
          restarts: int | None, tv_weight: float, inverse_steps: int | None, prior: str, prior_steps: int,
          reid_steps: int | None, mitigations: str | None, mitigation_layer: str | None, membership: bool,
          membership_n: int, model_inversion: bool, mi_classes: int, mi_iter: int, device: str, seed: int, out: str,
          data_root: str | None, download: bool) -> None:
    """How much of a private input can be rebuilt from a layer's features, and what does the model leak
    about its training set?

    For every chosen layer, three feature-inversion attacks rebuild test images (the victims) from their
    features; PSNR, SSIM and an independent re-identification classifier (trained on other photos of the same
    people) score the reconstructions, and each layer gets a risk rating: high (SSIM >= 0.5 or re-id top-1 >= 50%),
    medium (SSIM >= 0.3, He et al.'s threshold, or re-id above chance), low. Adds split-layer mitigations as a
    privacy/utility curve, membership inference (AUC, TPR at 1% and 0.1% FPR) and MIFace model inversion.
    Writes reports/<run-id>/report.html, results.csv, layers.csv and run.json. See docs/privacy.md.

    \b
        trustkit privacy audit                                          # cnn on digits, no data needed
        trustkit privacy audit --model cnn --dataset olivetti --data-root ../data
        trustkit privacy audit -d mnist --data-root ../data --layers relu1,relu2,relu3 --attacks white-box -n 16
    """
    from trustkit.privacy.audit import AuditConfig, run_audit
    from trustkit.privacy.mitigations import DEFAULT_MITIGATIONS

    if mitigations is None:
        chosen = list(DEFAULT_MITIGATIONS)
    elif mitigations.strip().lower() in ("none", ""):
        chosen = []
    else:
        chosen = _split([mitigations])
    config = AuditConfig(model=model, dataset=dataset, layers=_split(layers) or None,
                         attacks=_split(attacks) or ["white-box", "inverse-net", "gen-prior"], n=n, seed=seed,
                         device=device, data_root=data_root, download=download, out=out, whitebox_steps=steps,
                         whitebox_restarts=restarts, tv_weight=tv_weight, inverse_steps=inverse_steps, prior=prior,
                         prior_steps=prior_steps, reid_steps=reid_steps, mitigations=chosen,
                         mitigation_layer=mitigation_layer, membership=membership, membership_n=membership_n,
                         model_inversion=model_inversion, mi_classes=mi_classes, mi_max_iter=mi_iter,
                         trust_code=trust_code)
    result = run_audit(config)
    _print(result)
    click.echo(f"report: {result.report / 'report.html'}")


def _print(result) -> None:  # noqa: ANN001 - AuditResult
    from rich.console import Console
    from rich.table import Table

    def pct(value: float) -> str:
        return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.0%}"

    console = Console()
    table = Table(title="feature inversion: worst case per layer", title_justify="left")
    for column in ("layer", "features", "risk", "best PSNR", "best SSIM", "re-id top-1", "top-5", "strongest"):
        table.add_column(column, justify="right" if column.startswith(("best", "re-id", "top")) else "left")
    for _, row in result.layers.sort_values("layer_order").iterrows():
        table.add_row(row["layer"], row["feature_shape"], row["risk"], f"{row['best_psnr']:.1f} dB",
                      f"{row['best_ssim']:.3f}", pct(row["best_reid_top1"]), pct(row["best_reid_top5"]),
                      row["strongest_attack"])
    console.print(table)
    if len(result.membership):
        for _, row in result.membership.iterrows():
            console.print(f"membership inference {row.get('attack')}: AUC {row.get('auc', float('nan')):.3f}, "
                          f"TPR@1%FPR {pct(row.get('tpr_at_1pct_fpr'))}", highlight=False)
    else:
        console.print(f"membership inference: {result.info['membership_note']}", highlight=False)
    for check in result.checks:
        if check.status == "flag":
            console.print(f"[bold yellow]sanity flag:[/] {check.name}: {check.detail}", markup=True, highlight=False)
