"""``trustkit list``: the registries (models, attacks, data sets, attribution methods, corruptions), the suites
and the stored checkpoints."""
from __future__ import annotations

from typing import Any

import click

LISTABLE = ("models", "attacks", "datasets", "methods", "corruptions", "suites", "checkpoints")
CAPTIONS = {"models": "also: a store entry, a .safetensors checkpoint, torchvision:NAME / timm:NAME with --weights, "
                      "or (with --trust-code) TorchScript, .pt2 and package.module:factory",
            "datasets": "also your own images: folder:PATH (one sub-folder per class) or csv:FILE (path,label), "
                        "with --image-size",
            "methods": "attribution methods of 'trustkit explain --method' (Captum); options with -p METHOD.KEY=VALUE",
            "corruptions": "Hendrycks & Dietterich's common corruptions of 'trustkit bench corruptions --corruption', "
                           "severities 1-5 (imagecorruptions-imaug)"}


@click.command(name="list")
@click.argument("what", type=click.Choice(LISTABLE), required=False)
def list_(what: str | None) -> None:
    """Show what exists: models, attacks, datasets, attribution methods, corruptions, suites, checkpoints
    (default: all)."""
    from rich.console import Console
    from rich.table import Table

    from trustkit.errors import TrustkitError

    console = Console()
    for kind in [what] if what else LISTABLE:
        table = Table(title=kind, title_justify="left")
        if kind == "suites":
            from trustkit.studies.suite import available_suites, load_suite

            table.add_column("suite")
            table.add_column("cells", justify="right")
            table.add_column("description")
            table.add_column("file")
            for name, path in available_suites().items():
                try:
                    suite = load_suite(str(path))
                    extra = f" (+ {', '.join(kind for kind, _ in suite.studies)})" if suite.studies else ""
                    table.add_row(name, f"{len(suite.cells())}{extra}", suite.description, str(path))
                except TrustkitError as exc:
                    table.add_row(name, "invalid", str(exc), str(path))
        elif kind == "checkpoints":
            from trustkit.models.store import list_checkpoints, read_metadata, store_dir

            table.add_column("store entry")
            table.add_column("test accuracy", justify="right")
            table.add_column("created")
            for weights in list_checkpoints():
                try:
                    meta = read_metadata(weights)
                    accuracy = meta.get("metrics", {}).get("clean_accuracy")
                    table.add_row(weights.stem, f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else "?",
                                  meta.get("created", "?"))
                except TrustkitError:
                    table.add_row(weights.stem, "unreadable", "")
            table.caption = f"in {store_dir()}"
        else:
            table.add_column("name")
            table.add_column("aliases")
            table.add_column("description")
            for entry in _registry(kind).entries():
                table.add_row(entry.name, ", ".join(entry.aliases), entry.summary)
            table.caption = CAPTIONS.get(kind)
        console.print(table)


def _registry(kind: str) -> Any:
    if kind == "models":
        from trustkit.models import MODELS
        return MODELS
    if kind == "attacks":
        from trustkit.attacks import ATTACKS
        return ATTACKS
    if kind == "methods":
        from trustkit.explain.methods import ATTRIBUTION_METHODS
        return ATTRIBUTION_METHODS
    if kind == "corruptions":
        from trustkit.corruptions import CORRUPTIONS
        return CORRUPTIONS
    from trustkit.data import DATASETS
    return DATASETS
