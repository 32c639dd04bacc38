"""``trustkit explain``: what a model looks at — attributions (this group's own command), class-score
maximisation and feature visualisation (``explain maximize``), neural style transfer (``explain style``)."""
from __future__ import annotations

from typing import Any

import click

from trustkit.cli import options as opt
from trustkit.cli.tables import print_flags, print_table

METHOD_NAMES = "grad, input-x-grad, smoothgrad, integrated-gradients (ig), gradcam, occlusion"
DEFAULT_METHODS = "grad,smoothgrad,integrated-gradients,gradcam,occlusion"  # trustkit.explain.methods.DEFAULT_METHODS


@click.group(context_settings=opt.CONTEXT, invoke_without_command=True)
@opt.model_options("Classifier to explain: zoo name (trained and cached on first use), store entry, .safetensors "
                   "checkpoint, torchvision:NAME / timm:NAME with --weights, or (with --trust-code) code.")
@opt.dataset()
@click.option("--method", "methods", multiple=True,
              help=f"Attribution methods, repeatable or comma-separated: {METHOD_NAMES}. Default: {DEFAULT_METHODS}.")
@click.option("--images-per-class", "per_class", type=click.IntRange(min=1), default=4, show_default=True,
              help="Test images of each class (seeded).")
@opt.attack("attack", "Attack that makes the adversarial images shown beside the clean ones (any trustkit attack).",
            several=False, default="pgd")
@opt.eps("Its budget (default: the middle of the data set's grid, e.g. 0.2 on digits, 4/255 on CIFAR-10).",
         several=False)
@opt.norm()
@click.option("--layer", help="Grad-CAM's layer: alias (conv2, relu3 ...) or module name. Default: the last "
              "convolution whose output is at least 2×2.")
@click.option("--curve-steps", type=click.IntRange(min=1), default=16, show_default=True,
              help="Points of the deletion and insertion curves.")
@click.option("--randomization-n", type=click.IntRange(min=0), default=16, show_default=True,
              help="Images of the model-randomisation test (0 skips it).")
@opt.param("A method option: smoothgrad.samples=32, smoothgrad.noise=0.1, integrated-gradients.steps=64, "
           "occlusion.window=4.", metavar="METHOD.KEY=VALUE")
@opt.batch_size("Images per attribution batch.", default=64)
@opt.device()
@opt.seed("Seed of the sample, the attack and the randomisation.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, curves.csv, randomization.csv and run.json.")
@opt.data_options()
@opt.run_options
@opt.own_model_data_options
@click.pass_context
def explain(ctx: click.Context, model: str, trust_code: bool, dataset: str, methods: tuple[str, ...],
            per_class: int, attack: str, eps: str | None, norm: str, layer: str | None, curve_steps: int,
            randomization_n: int, params: tuple[str, ...], batch_size: int, device: str, seed: int, out: str,
            data_root: str | None, download: bool, jobs: int, no_cache: bool, backend: str,
            ray_address: str | None, **own: Any) -> None:
    """What does the model look at? Attribution maps (Captum), checked for faithfulness and sanity.

    For a class-balanced sample of test images, each method gives a map of the evidence for the true class;
    beside it, the same for adversarial versions of the images (how the attack moves the evidence). Each map is
    scored by deletion/insertion curves against a random order (is it faithful?) and by the model-randomisation
    test of Adebayo et al. 2018 (does it change when the weights are destroyed?); a method that fails either is
    flagged. Writes reports/<run-id>/report.html, results.csv, curves.csv, randomization.csv and run.json.

    \b
        trustkit explain                                     # cnn on digits, five methods, ~15 s
        trustkit explain --model resnet --method gradcam,ig -p integrated-gradients.steps=64
        trustkit explain maximize --help                     # images that maximise a class or a feature
        trustkit explain style --help                        # neural style transfer
    """
    if ctx.invoked_subcommand is not None:
        return
    model, dataset = opt.own_model_data(model, dataset, own)
    from trustkit.engine import run
    from trustkit.studies.explain import ExplainConfig, explain_study

    opt.check_backend(backend, ray_address)
    config = ExplainConfig(model=model, dataset=dataset,
                           methods=tuple(opt.split_list(methods) or DEFAULT_METHODS.split(",")),
                           per_class=per_class, attack=attack, eps=eps, norm=norm, layer=layer, steps=curve_steps,
                           randomization_n=randomization_n, options=method_params(params), seed=seed,
                           batch_size=batch_size, device=device, data_root=data_root, download=download,
                           trust_code=trust_code, out=out, use_cache=not no_cache, jobs=jobs, backend=backend,
                           ray_address=ray_address)
    result = run(explain_study(config), out=out, device=device, backend=backend, jobs=jobs, use_cache=not no_cache,
                 ray_address=ray_address)
    print_explain(result)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def method_params(params: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """``-p METHOD.KEY=VALUE`` options by canonical method name (values read as YAML: 32 int, 0.1 float)."""
    from trustkit.attacks.spec import parse_param
    from trustkit.errors import InvalidArgumentError
    from trustkit.explain.methods import ATTRIBUTION_METHODS

    found: dict[str, dict[str, Any]] = {}
    for text in params:
        key, value = parse_param(text)
        method, dot, option = key.rpartition(".")
        if not dot or not method:
            raise InvalidArgumentError(f"cannot read '{text}'; write METHOD.KEY=VALUE, e.g. -p smoothgrad.samples=32")
        found.setdefault(ATTRIBUTION_METHODS.canonical(method.replace("_", "-")), {})[option] = value
    return found


def print_explain(result) -> None:  # noqa: ANN001 - trustkit.engine.RunResult
    """One line per method: faithfulness beside random, the randomisation verdict; then the flags."""
    results = result.results
    if len(results):
        values = {"deletion AUC": lambda r: f"{r['deletion_auc']:.3f} (random {r['random_deletion_auc']:.3f})",
                  "insertion AUC": lambda r: f"{r['insertion_auc']:.3f} (random {r['random_insertion_auc']:.3f})",
                  "ρ randomised": lambda r: f"{r['randomization_rank_correlation']:.2f}",
                  "sanity": lambda r: str(r["randomization"])}
        print_table(results, ["method"], values, title="attributions: faithfulness and the randomisation test",
                    justify={"sanity": "left"})
    print_flags(result.checks)


def _mount() -> None:
    """The sub-commands: images that maximise a class or feature, and style transfer."""
    from trustkit.cli.explain_style import style
    from trustkit.cli.explain_visualize import maximize

    explain.add_command(maximize)
    explain.add_command(style)


_mount()
