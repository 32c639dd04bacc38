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

            entries = list_checkpoints()
            # an entry name is what the user types next (--model, --detector): never cut it short
            table.add_column("store entry", no_wrap=True, min_width=max((len(w.stem) for w in entries), default=11))
            table.add_column("kind")
            table.add_column("score", justify="right", no_wrap=True)
            table.add_column("created", no_wrap=True)
            for weights in entries:
                try:
                    meta = read_metadata(weights)
                    created = str(meta.get("created", "?"))[:10]  # the day (UTC): the table fits 80 columns
                    table.add_row(weights.stem, *_entry_score(meta), created)
                except TrustkitError:
                    table.add_row(weights.stem, "", "unreadable", "")
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


def _entry_score(meta: dict) -> tuple[str, str]:
    """(kind, the figure that says how good it is) of a store entry: a classifier's test accuracy, a fake
    detector's AUC on its validation split; a generator has no single figure (its report has them)."""
    kind = meta.get("kind", "classifier")
    if kind == "detector":
        auc = meta.get("validation", {}).get("auc")
        return "detector", f"AUC {auc:.3f} (val)" if isinstance(auc, (int, float)) else "–"
    if kind == "generative":
        return "generator", "–"
    accuracy = meta.get("metrics", {}).get("clean_accuracy")
    return "classifier", f"{accuracy:.2%} (test)" if isinstance(accuracy, (int, float)) else "–"

