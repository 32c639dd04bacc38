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
@opt.shadow_models("Add LiRA and RMIA with this many shadow models (as `trustkit privacy membership`: the "
                   "architecture's target and shadows trained on halves of a pool) as a section of the report; "
                   "0 skips them. 16 on digits takes ~1 min.", default=0)
@opt.device()
@opt.seed("Seed for victims, restarts and training.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, layers.csv and run.json.")
@opt.data_options(download_help="Fetch a missing data set into the first data root (needs internet).")
@opt.run_options
@opt.own_model_data_options
def audit(model: str, trust_code: bool, dataset: str, layers: tuple[str, ...], attacks: tuple[str, ...], n: int | None, steps: int,
          restarts: int | None, tv_weight: float, inverse_steps: int | None, prior: str, prior_steps: int,
          reid_steps: int | None, mitigations: str | None, mitigation_layer: str | None, membership: bool,
          membership_n: int, model_inversion: bool, mi_classes: int, mi_iter: int, shadow_models: int, device: str,
          seed: int, out: str, data_root: str | None, download: bool, jobs: int, no_cache: bool, backend: str,
          ray_address: str | None, **own: Any) -> None:
    """How much of a private input can be rebuilt from a layer's features, and what does the model leak
    about its training set?

    For every chosen layer, three feature-inversion attacks rebuild test images (the victims) from their
    features; PSNR, SSIM and an independent re-identification classifier (trained on other photos of the same
    people) score the reconstructions, and each layer gets a risk rating: high (SSIM >= 0.5 or re-id top-1 >= 50%),
    medium (SSIM >= 0.3, He et al.'s threshold, or re-id above chance), low. Adds split-layer mitigations as a
    privacy/utility curve, membership inference (AUC, TPR at 1% and 0.1% FPR) and MIFace model inversion; with
    --shadow-models K also LiRA and RMIA with K shadow models, as a section of the same report.
    Writes reports/<run-id>/report.html, results.csv, layers.csv and run.json. See docs/privacy.md.

    \b
        trustkit privacy audit                                          # cnn on digits, no data needed
        trustkit privacy audit --model cnn --dataset olivetti --data-root ../data
        trustkit privacy audit -d mnist --data-root ../data --layers relu1,relu2,relu3 --attacks white-box -n 16
        trustkit privacy audit --shadow-models 16                       # + LiRA / RMIA on digits
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
                         shadow_models=shadow_models,
                         trust_code=trust_code, use_cache=not no_cache, jobs=jobs, backend=backend,
                         ray_address=ray_address)
    opt.check_backend(backend, ray_address)
    result = run_audit(config)
    print_audit(result)
    if "membership_results.csv" in result.tables:
        print_membership({"results.csv": result.tables["membership_results.csv"]})
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


@privacy.command(context_settings=opt.CONTEXT)
@opt.model("Zoo architecture of the target and its shadow models (each trained here on a random half of the "
           "pool; see `trustkit list models`).", default="cnn")
@opt.dataset("digits (embedded), mnist, cifar10, faces, olivetti, or folder:PATH / csv:FILE.")
@opt.attack("attacks", "Attacks, comma-separated: lira (online), lira-offline, rmia, loss. Default: all four.")
@opt.shadow_models("Shadow models K (Carlini et al. use 16 for small data, up to 256). Each is one cached cell: a "
                   "larger K later reuses the ones trained before.", default=16)
@click.option("--pool", type=int,
              help="Candidate training images (half become members; default min(2,000, the training split)). "
                   "TPR at 0.1% FPR needs at least 1,000 non-members, i.e. a pool of 2,000.")
@click.option("--population", type=int,
              help="Test images no model saw, RMIA's reference points z (default min(1,000, the test split)).")
@opt.queries("queries", "Augmented views queried per image: identity, mirror (data sets trained with flips), then "
             "1-pixel shifts.", default=2)
@opt.epochs("Training epochs of every model (default: the zoo's for the pair, at least 30: a half-pool is small).")
@opt.batch_size("Training batch of every model (default: the zoo's).", default=None)
@opt.lr("Peak learning rate of every model (default: the zoo's).")
@click.option("--variance", type=click.Choice(["auto", "global", "per-example"]), default="auto", show_default=True,
              help="LiRA's Gaussian spread: one pooled over all images, or one per image; auto pools under 64 "
                   "shadow models.")
@click.option("--gamma", type=float, default=1.0, show_default=True,
              help="RMIA's threshold γ on the pairwise likelihood ratio.")
@opt.device()
@opt.seed("Seed of the pool, the halves and every model's training.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, scores.csv, models.csv and run.json.")
@opt.data_options()
@opt.run_options
def membership(model: str, dataset: str, attacks: tuple[str, ...], shadow_models: int, pool: int | None,
               population: int | None, queries: int, epochs: int | None, batch_size: int | None, lr: float | None,
               variance: str, gamma: float, device: str, seed: int, out: str, data_root: str | None, download: bool,
               jobs: int, no_cache: bool, backend: str, ray_address: str | None) -> None:
    """Was this image in the training set? LiRA and RMIA with shadow models, beside the loss threshold.

    The target and K shadow models of the same architecture and recipe are trained on seeded random halves of a
    pool of training images; members are the target's half. LiRA (Carlini et al. 2022) compares the target's
    logit-scaled confidence with per-image Gaussians of the shadows trained with and without the image; RMIA
    (Zarifzadeh et al. 2024) compares it with population images. Reports AUC and the TPR at 1% and 0.1% FPR —
    only where the non-members can resolve that rate, else the TPR at 0 false positives with the count — and the
    ROC on log-log axes. Every model is a cached cell: a killed run resumes, and --jobs/--backend ray spread the
    shadows. See docs/privacy.md.

    \b
        trustkit privacy membership                                   # cnn on digits, 16 shadows: ~1 min
        trustkit privacy membership -d cifar10 --data-root ../data --pool 2000 --shadow-models 16
        trustkit privacy membership -d mnist --data-root ../data --attack lira,loss --jobs 2 --backend processes
    """
    from trustkit.engine import run
    from trustkit.studies.membership import ATTACKS, MembershipConfig, membership_study

    opt.check_backend(backend, ray_address)
    chosen = tuple(opt.split_list(attacks)) or ATTACKS
    config = MembershipConfig(model=model, dataset=dataset, attacks=chosen, shadow_models=shadow_models, pool=pool,
                              population=population, queries=queries, epochs=epochs, batch_size=batch_size, lr=lr,
                              variance=variance, gamma=gamma, seed=seed, device=device, data_root=data_root,
                              download=download, out=out, use_cache=not no_cache, jobs=jobs, backend=backend,
                              ray_address=ray_address)
    result = run(membership_study(config), out=out, device=device, backend=backend, jobs=jobs,
                 use_cache=not no_cache, ray_address=ray_address)
    print_membership(result.tables)
    print_flags(result.checks)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_membership(tables: dict[str, Any]) -> None:
    """One row per attack: AUC, TPR at 1% / 0.1% FPR (or "n/r": not resolved), TPR at 0 false positives."""
    results = tables["results.csv"]
    if not len(results):
        click.echo("membership: the target model did not finish; no attack could be scored")
        return

    def rate(column: str):  # noqa: ANN202
        return lambda row: "n/r" if row[column] != row[column] else percent(row[column], 2)

    first = results.iloc[0]
    print_table(results, ["attack"], {"AUC": lambda row: f"{row['auc']:.4f}", "TPR@1%": rate("tpr_at_1pct_fpr"),
                                      "TPR@0.1%": rate("tpr_at_0_1pct_fpr"), "TPR@0 FP": rate("tpr_at_0_fp")},
                title=f"membership inference: {int(first['members'])} members, {int(first['non_members'])} "
                      f"non-members, {int(first['shadow_models'])} shadow models (n/r: too few non-members to "
                      "resolve that FPR)")
