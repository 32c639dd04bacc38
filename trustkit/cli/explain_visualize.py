"""``trustkit explain maximize``: images that maximise a class logit or a layer's channel, model beside model."""
from __future__ import annotations

import click

from trustkit.cli import options as opt
from trustkit.cli.tables import print_flags, print_table

# trustkit.explain.visualize's defaults (kept literal here: --help must not import torch)
STEPS, LR, L2, TV, TV_BETA, BLUR_EVERY, BLUR_SIGMA = 200, 0.05, 1.0, 1.0, 2.0, 4, 0.5


def _indices(values: tuple[str, ...], option: str) -> list[int] | None:
    """``("0,2", "5-7")`` -> ``[0, 2, 5, 6, 7]``; None when the option was not given."""
    from trustkit.errors import InvalidArgumentError

    items = opt.split_list(values)
    if not items:
        return None
    found: list[int] = []
    for item in items:
        low, dash, high = item.partition("-")
        try:
            found += list(range(int(low), int(high) + 1)) if dash else [int(item)]
        except ValueError:
            raise InvalidArgumentError(f"cannot read {option} '{item}'; write whole numbers or ranges, e.g. "
                                       f"{option} 0,3,5-7") from None
    return found


@click.command(context_settings=opt.CONTEXT)
@opt.model_options("Models side by side, comma-separated, each SPEC or ROLE=SPEC: a classifier (zoo name, trained "
                   "on first use; store entry such as cnn-digits-pgd-eps0.2, trained on first use with the "
                   "defaults of 'trustkit train --adv pgd --eps 0.2'; .safetensors file) or gan:NAME[:HEAD], a GAN "
                   "discriminator (gan:acgan: its class head; gan:dcgan, gan:acgan:source: its real/fake logit; "
                   "generators are trained on first use). Roles default to standard / adversarially trained / "
                   "GAN discriminator.")
@click.option("--lab", is_flag=True,
              help="The seed deck's lab: standard cnn, cnn adversarially trained with PGD (eps 0.2 on digits) and "
                   "the ACGAN discriminator, side by side (replaces --model). The first run trains the two missing "
                   "models, about 2 minutes on 2 CPU cores (measured 1 min 54 s from an empty store); later runs take seconds.")
@opt.dataset()
@click.option("--objective", type=click.Choice(["class", "feature", "both"]),
              help="What to maximise: class logits, the channels of --feature, or both. Default: feature when "
                   "--feature is given, else class.")
@click.option("--class-ids", "class_ids", multiple=True,
              help="Class indices to maximise, e.g. 0,3,5-7. Default: every class (a real/fake head has one output).")
@click.option("--feature", "feature_layer",
              help="Layer whose channels to maximise: alias (conv1, relu1, pool1, relu2 ...) or module name (net.3).")
@click.option("--channels", multiple=True, help="Channels of --feature, e.g. 0-7 (the default) or 3,9.")
@opt.steps("Adam steps per image.", default=STEPS)
@opt.lr("Adam step size, in pixel units ([0, 1]) per step.", default=LR)
@click.option("--l2", type=float, default=L2, show_default=True,
              help="Weight of the L2 decay: mean squared distance from --l2-center, per pixel.")
@click.option("--l2-center", default="mean", show_default=True,
              help="What the L2 decay pulls towards: mean (the data set's mean test image) or a pixel value in [0, 1].")
@click.option("--tv", type=float, default=TV, show_default=True,
              help="Weight of the total-variation prior TV_β (per pixel); 0 turns it off.")
@click.option("--tv-beta", type=float, default=TV_BETA, show_default=True, help="Exponent β of the TV prior (>= 1).")
@click.option("--jitter", type=int, help="Largest random shift before each step, in pixels (default: the image side "
              "// 16, so 0 on 8×8 digits, 2 on 32×32).")
@click.option("--blur-every", type=int, default=BLUR_EVERY, show_default=True,
              help="Blur the image every this many steps (0: never).")
@click.option("--blur-sigma", type=float, default=BLUR_SIGMA, show_default=True,
              help="Standard deviation of the blur, in pixels.")
@opt.n("Test images behind the mean image and the real-image logits the report compares with (default: the data "
       "set's evaluation size).")
@opt.device()
@opt.seed("Seed of the start image (the same for every model and class) and the jitter.")
@opt.out("Folder that receives <run-id>/report.html, results.csv and run.json.")
@opt.data_options()
@opt.run_options
def maximize(model: str, trust_code: bool, lab: bool, dataset: str, objective: str | None,
             class_ids: tuple[str, ...], feature_layer: str | None, channels: tuple[str, ...], steps: int, lr: float,
             l2: float, l2_center: str, tv: float, tv_beta: float, jitter: int | None, blur_every: int,
             blur_sigma: float, n: int | None, device: str, seed: int, out: str, data_root: str | None,
             download: bool, jobs: int, no_cache: bool, backend: str, ray_address: str | None) -> None:
    """What has a model learned a class to be? Optimise an image to maximise a class logit, or a layer's
    channel, and show the images of several models side by side.

    Each image starts from the same seeded image and follows the model's gradient (Simonyan et al. 2014) under
    the priors of deep visualisation (Yosinski et al. 2015): L2 decay, total variation, jitter and blur. An
    adversarially trained model's images look more like the class than a standard one's (Santurkar et al. 2019);
    a GAN discriminator shows what tells real images from generated ones. The report has a grid of the images
    (one row per model), the logit against the step beside the class's logit on real images, and the numbers.
    Writes reports/<run-id>/report.html, results.csv and run.json.

    \b
        trustkit explain maximize                                  # the digits cnn, every class, seconds
        trustkit explain maximize --lab                            # standard vs PGD-trained vs ACGAN's D
        trustkit explain maximize --model "cnn,robust=cnn-digits-pgd-eps0.2,gan:acgan" --class-ids 0-4
        trustkit explain maximize --model cnn,gan:dcgan --feature relu1 --channels 0-7
        trustkit explain maximize --model disc196,gan:acgan-cifar --dataset cifar10 --data-root ../data
    """
    from trustkit.engine import run
    from trustkit.studies.visualize import MaximizeConfig, maximize_study
    from trustkit.studies.visualize_models import lab_models

    opt.check_backend(backend, ray_address)
    models = lab_models(dataset) if lab else opt.split_list([model])
    if objective is None:
        objective = "feature" if feature_layer else "class"
    targets = ["class", "feature"] if objective == "both" else [objective]
    config = MaximizeConfig(models=models, dataset=dataset, targets=targets, classes=_indices(class_ids, "--class-ids"),
                            layer=feature_layer, channels=_indices(channels, "--channels"), steps=steps, lr=lr, l2=l2,
                            l2_center=l2_center, tv=tv, tv_beta=tv_beta, jitter=jitter, blur_every=blur_every,
                            blur_sigma=blur_sigma, n=n, seed=seed, device=device, data_root=data_root,
                            download=download, trust_code=trust_code, out=out, use_cache=not no_cache, jobs=jobs,
                            backend=backend, ray_address=ray_address)
    result = run(maximize_study(config), out=out, device=device, backend=backend, jobs=jobs, use_cache=not no_cache,
                 ray_address=ray_address)
    print_maximize(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def print_maximize(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """One line per model and target: the objective's gain and how many class images end predicted as their class."""
    results = result.results
    if len(results):
        summary = results.assign(hit=results["predicted"] == results["class_name"]).groupby(
            ["model", "role", "target"], sort=False).agg(
            images=("gain", "size"), start=("start", "mean"), end=("end", "mean"), hit=("hit", "sum"),
            probability=("probability", "mean")).reset_index()
        values = {"images": lambda r: str(int(r["images"])),
                  "mean start → end": lambda r: f"{r['start']:.2f} → {r['end']:.2f}",
                  "predicted as class": lambda r: f"{int(r['hit'])}/{int(r['images'])}" if r["target"] == "class"
                  else "–",
                  "mean p(class)": lambda r: f"{r['probability']:.1%}" if r["target"] == "class" else "–"}
        print_table(summary, ["model", "role", "target"], values, title="maximised images per model")
    print_flags(result.checks)
