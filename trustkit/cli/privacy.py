"""``trustkit privacy``: the privacy audit from the command line (``trustkit privacy audit ...``)."""
from __future__ import annotations

from typing import Any

import click

from trustkit.cli import options as opt
from trustkit.cli.tables import percent, print_flags, print_table


@click.group(context_settings=opt.CONTEXT)
def privacy() -> None:
    """Privacy audits: feature inversion per layer, membership inference, model inversion."""


@privacy.command(context_settings=opt.CONTEXT)
@opt.model_options("Target classifier: zoo name (trained and cached on first use), store entry, .safetensors "
                   "checkpoint or (with --trust-code) package.module:factory (TorchScript cannot take feature hooks).",
                   trust_help="Allow --model to be package.module:factory: it is code, and loading it runs it, so "
                              "pass this only if you trust its author. Zoo names and .safetensors checkpoints never "
                              "need it.")
@opt.dataset("digits (embedded; re-identification then names digit classes), mnist, olivetti (40 people: "
             "identity re-identification), faces, cifar10.")
@click.option("--layers", "-l", "layers", multiple=True,
              help="Layers whose features are shared, repeatable or comma-separated: aliases (conv1, relu1, pool1, "
                   "relu2, fc1 ...) or module names (net.1). Default: every ReLU and pooling output.")
@click.option("--attacks", "-a", "attacks", multiple=True,
              help="Inversion attacks, comma-separated: white-box (optimisation + TV prior), inverse-net (learned "
                   "decoder, black-box), gen-prior (latent search through a trustkit VAE/GAN). Default: all three.")
@opt.n("Victims: test images, balanced over classes (default 40 on olivetti — one per person — else 32).")
@opt.steps("White-box optimisation steps.", default=300)
@opt.restarts("White-box random restarts, best kept (default 2; 1 above 32×32).")
@opt.tv_weight("White-box total-variation weight λ.", default=0.02)
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
@opt.device()
@opt.seed("Seed for victims, restarts and training.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, layers.csv and run.json.")
@opt.data_options(download_help="Fetch a missing data set into the first data root (needs internet).")
@opt.run_options
@opt.own_model_data_options
def audit(model: str, trust_code: bool, dataset: str, layers: tuple[str, ...], attacks: tuple[str, ...], n: int | None, steps: int,
          restarts: int | None, tv_weight: float, inverse_steps: int | None, prior: str, prior_steps: int,
          reid_steps: int | None, mitigations: str | None, mitigation_layer: str | None, membership: bool,
          membership_n: int, model_inversion: bool, mi_classes: int, mi_iter: int, device: str, seed: int, out: str,
          data_root: str | None, download: bool, jobs: int, no_cache: bool, backend: str,
          ray_address: str | None, **own: Any) -> None:
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
    model, dataset = opt.own_model_data(model, dataset, own)
    from trustkit.engine import run_audit
    from trustkit.privacy.audit import AuditConfig
    from trustkit.privacy.mitigations import DEFAULT_MITIGATIONS

    split = opt.split_list
    if mitigations is None:
        chosen = list(DEFAULT_MITIGATIONS)
    elif mitigations.strip().lower() in ("none", ""):
        chosen = []
    else:
        chosen = split([mitigations])
    config = AuditConfig(model=model, dataset=dataset, layers=split(layers) or None,
                         attacks=split(attacks) or ["white-box", "inverse-net", "gen-prior"], n=n, seed=seed,
                         device=device, data_root=data_root, download=download, out=out, whitebox_steps=steps,
                         whitebox_restarts=restarts, tv_weight=tv_weight, inverse_steps=inverse_steps, prior=prior,
                         prior_steps=prior_steps, reid_steps=reid_steps, mitigations=chosen,
                         mitigation_layer=mitigation_layer, membership=membership, membership_n=membership_n,
                         model_inversion=model_inversion, mi_classes=mi_classes, mi_max_iter=mi_iter,
                         trust_code=trust_code, use_cache=not no_cache, jobs=jobs, backend=backend,
                         ray_address=ray_address)
    opt.check_backend(backend, ray_address)
    result = run_audit(config)
    print_audit(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_audit(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """The worst case per layer, the membership-inference line(s) and the sanity flags."""
    from rich.console import Console

    def pct(value: float) -> str:
        return percent(value, 0)

    values = {"features": lambda row: str(row["feature_shape"]), "risk": lambda row: str(row["risk"]),
              "best PSNR": lambda row: f"{row['best_psnr']:.1f} dB", "best SSIM": lambda row: f"{row['best_ssim']:.3f}",
              "re-id top-1": lambda row: pct(row["best_reid_top1"]), "top-5": lambda row: pct(row["best_reid_top5"]),
              "strongest": lambda row: str(row["strongest_attack"])}
    layers, membership = result.tables["layers.csv"], result.tables["membership.csv"]
    if len(layers):
        print_table(layers.sort_values("layer_order"), ["layer"], values,
                    title="feature inversion: worst case per layer",
                    justify={"features": "left", "risk": "left", "strongest": "left"})
    console = Console()
    if len(membership):
        for _, row in membership.iterrows():
            console.print(f"membership inference {row.get('attack')}: AUC {row.get('auc', float('nan')):.3f}, "
                          f"TPR@1%FPR {pct(row.get('tpr_at_1pct_fpr'))}", highlight=False)
    else:
        console.print(f"membership inference: {result.run_info['membership_note']}", highlight=False)
    print_flags(result.checks)
