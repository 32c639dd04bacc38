"""``trustkit explain style``: neural style transfer (Gatys et al. 2016) through any classifier."""
from __future__ import annotations

from typing import Any

import click

from trustkit.cli import options as opt

# the library's defaults (trustkit.explain.style, trustkit.studies.style), written here so that --help does not
# import torch; tests/test_explain_style.py checks that they agree
STEPS = 200
SIZE = 128
STYLE_WEIGHTS = (1.0, 10.0, 100.0)
CONTENT_WEIGHT = 1.0
TV_WEIGHT = 1.0

LAYER_HELP = ("module names (net.features.22), aliases (relu2, conv3) or block names (relu4_2, conv4_2: Gatys' "
              "VGG naming, for any convnet), repeatable or comma-separated.")


@click.command(context_settings=opt.CONTEXT)
@click.option("--content", "contents", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Content image (PNG, JPEG, any format Pillow reads); repeatable: every content × style pair runs.")
@click.option("--style", "styles", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="Style image; repeatable. It is scaled to cover the content and centre-cropped.")
@opt.model_options("Classifier whose features define content and style: a zoo name (default cnn: the digits CNN, "
                   "trained in seconds on first use, offline; a small grey model, so results are grey fine "
                   "textures), a store entry, a .safetensors checkpoint, or torchvision:NAME / timm:NAME with "
                   "--weights FILE.safetensors (1,000 classes unless --num-classes; Gatys et al. used torchvision:vgg19 "
                   "with ImageNet weights; without --weights its features are random, which the report says). "
                   "Nothing is downloaded.",
                   default="cnn")
@opt.dataset("Which checkpoint a zoo name means and the input shape of code models (default: digits, or a "
             "checkpoint's own data set); not needed for torchvision:/timm: models.", default=None)
@click.option("--content-layers", multiple=True, help="Content layers: " + LAYER_HELP + " Default: the second "
              "activation of the next-to-last block (VGG: conv4_2).")
@click.option("--style-layers", multiple=True, help="Style layers: " + LAYER_HELP + " Default: the first activation "
              "of each of the first five blocks (VGG: conv1_1 ... conv5_1).")
@click.option("--style-weight", "style_weights", type=float, multiple=True,
              help="Style weight β, repeatable: one transfer each, so the report shows the content/style trade-off. "
                   f"Default: {', '.join(f'{w:g}' for w in STYLE_WEIGHTS)}. Losses are relative errors, so the same "
                   "β suits every model (see --raw-losses).")
@click.option("--content-weight", type=float, default=CONTENT_WEIGHT, show_default=True, help="Content weight α.")
@opt.tv_weight("Weight γ of the total-variation prior (per-pixel squared differences): higher, smoother.",
               default=TV_WEIGHT)
@opt.steps("Optimiser iterations per image (L-BFGS: each runs a line search of a few evaluations).", default=STEPS)
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True,
              help="lbfgs: Gatys et al.'s choice, converges in far fewer steps and needs no step size; adam: less "
                   "memory (large images on a small GPU).")
@opt.lr("Step size: scales L-BFGS's first trial step (default 1); Adam's in pixel units per step (default 0.02).")
@click.option("--init", type=click.Choice(["content", "noise"]), default="content", show_default=True,
              help="Start image: the content image, or seeded white noise (Gatys et al.'s original start).")
@click.option("--size", type=click.IntRange(8, 4096), default=SIZE, show_default=True,
              help="Longer side of the content image, in pixels (kept aspect ratio); 256-512 on a GPU.")
@click.option("--raw-losses", is_flag=True,
              help="Use Gatys' raw loss sums instead of relative errors (then good weights depend on the model).")
@opt.device()
@opt.seed("Seed of the noise start and of every cell.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, losses.csv and run.json.")
@opt.data_options()
@opt.run_options
@opt.own_model_data_options
def style(contents: tuple[str, ...], styles: tuple[str, ...], model: str, trust_code: bool, dataset: str | None,
          content_layers: tuple[str, ...], style_layers: tuple[str, ...], style_weights: tuple[float, ...],
          content_weight: float, tv_weight: float, steps: int, optimizer: str, lr: float | None, init: str,
          size: int, raw_losses: bool, device: str, seed: int, out: str, data_root: str | None, download: bool,
          jobs: int, no_cache: bool, backend: str, ray_address: str | None, **own: Any) -> None:
    """Neural style transfer: the content of one image in the style of another (Gatys et al. 2016).

    The image is optimised so that its feature maps on the content layers match the content image's and the
    Gram matrices G = F Fᵀ / (C·H·W) of its feature maps on the style layers match the style image's. One
    transfer per content × style × style weight; the report shows them side by side with the loss curves, the
    trade-off and the layers. Writes reports/<run-id>/report.html, results.csv, losses.csv and run.json.

    \b
        trustkit explain style --content photo.jpg --style painting.jpg            # digits cnn, offline
        trustkit explain style --content photo.jpg --style painting.jpg --style-weight 10 \\
            --model torchvision:vgg19 --weights vgg19.safetensors --size 256 --device cuda
    """
    model, resolved = opt.own_model_data(model, dataset or "digits", own)  # --weights into a library spec
    dataset = resolved if dataset is not None else None  # None: the model's own data set (see --dataset)
    from trustkit.engine import run
    from trustkit.studies.style import StyleConfig, style_study

    opt.check_backend(backend, ray_address)
    config = StyleConfig(content=contents, style=styles, model=model, dataset=dataset,
                         style_weights=tuple(style_weights) or STYLE_WEIGHTS, content_weight=content_weight,
                         tv_weight=tv_weight, content_layers=tuple(opt.split_list(content_layers)),
                         style_layers=tuple(opt.split_list(style_layers)), steps=steps, optimizer=optimizer, lr=lr,
                         init=init, size=size, normalize=not raw_losses, seed=seed, device=device,
                         data_root=data_root, download=download, trust_code=trust_code)
    result = run(style_study(config), out=out, device=device, backend=backend, jobs=jobs, use_cache=not no_cache,
                 ray_address=ray_address)
    for row in result.results.to_dict("records"):
        click.echo(f"{row['content']} × {row['style']}, style weight {row['style_weight']:g}: content loss "
                   f"{row['content_loss']:.4f}, style loss {row['style_loss']:.5f} (from {row['start_style_loss']:.4f}), "
                   f"{row['seconds']:.1f} s")
    from trustkit.cli.tables import print_flags

    print_flags(result.checks)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)
