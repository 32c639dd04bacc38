"""Command-line entry points of the black-box studies, mounted as ``trustkit bench transfer`` and
``trustkit bench substitute`` (bench workloads, registered in ``trustkit.cli``).

The query-based attacks (``square``, ``hopskipjump``) are ordinary attacks of ``trustkit bench ATTACK``. Errors
raise TrustkitError, which the main entry point turns into one line and exit code 2.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import click

from trustkit.cli_types import SEED

DATA_ROOT_HELP = "Folder with local data sets (else $TRUSTKIT_DATA, else $TRUSTKIT_HOME/data)."
DOWNLOAD_HELP = "Fetch a missing MNIST/CIFAR-10 with torchvision into the first data root (needs internet)."
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _split(values: Sequence[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _attack_params(steps: int | None, alpha: float | None, restarts: int | None,
                   params: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from trustkit.bench.spec import parse_param

    return {"steps": steps, "alpha": alpha, "restarts": restarts}, dict(parse_param(p) for p in params)


def _shared_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options of every black-box study: data, budgets, attack parameters, device, seed, output."""
    for option in reversed([
        click.option("--dataset", "-d", default="digits", show_default=True,
                     help="digits (embedded), mnist, cifar10, faces (UTKFace, gender) or olivetti (40 people)."),
        click.option("--attack", "-a", "attacks", multiple=True,
                     help="Attack(s) crafted on the attacker's model, repeatable or comma-separated (default "
                          "fgsm,pgd). Iterative attacks return their last iterate (no early stopping) unless "
                          "-p early_stop=true."),
        click.option("--eps", "-e", multiple=True,
                     help="Perturbation budget(s) on the [0, 1] pixel scale: repeat or comma-separate; 8/255 works. "
                          "Default: the data set's grid."),
        click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True,
                     help="Threat model norm."),
        click.option("--n", "-n", "n", type=int,
                     help="Number of test images judged (seeded random subset). Default: the data set's."),
        click.option("--batch-size", type=int, default=256, show_default=True, help="Images per attack batch."),
        click.option("--steps", type=int, help="Iterations of iterative attacks (PGD default 10)."),
        click.option("--alpha", type=float, help="Step size of iterative attacks (PGD default 2.5·eps/steps)."),
        click.option("--restarts", type=int, help="Random restarts of PGD and APGD (default 1)."),
        click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
                     help="Attack parameter passed through (repeatable), e.g. -p decay=0.5."),
        click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda or mps."),
        click.option("--seed", type=SEED, default=0, show_default=True,
                     help="Seed for the image subsets, training and random starts."),
        click.option("--out", "-o", default="reports", show_default=True, type=click.Path(file_okay=False),
                     help="Folder that receives <run-id>/report.html, results.csv and run.json."),
        click.option("--data-root", type=click.Path(file_okay=False), help=DATA_ROOT_HELP),
        click.option("--download", is_flag=True, help=DOWNLOAD_HELP),
        click.option("--trust-code", is_flag=True,
                     help="Allow models that are TorchScript files or package.module:factory. These are programs: "
                          "loading one runs its code, so pass this only for models whose author you trust. Zoo "
                          "names and .safetensors checkpoints never need it."),
    ]):
        fn = option(fn)
    return fn


def _print_flags(checks: list) -> None:
    from rich.console import Console

    console = Console()
    for check in checks:
        if check.status == "flag":
            console.print(f"[bold yellow]sanity flag:[/] {check.name}: {check.detail}", markup=True, highlight=False)


@click.command(name="transfer", context_settings=CONTEXT)
@click.option("--source", "-s", "sources", multiple=True, required=True,
              help="Model(s) the attacker crafts on (it has their gradients), repeatable or comma-separated; join "
                   "models with '+' for an ensemble that averages their logits (cnn+mlp). Zoo names (softmax, mlp, "
                   "cnn, resnet, resnet20; trained and cached on first use), store entries, .safetensors files, "
                   "or (with --trust-code) TorchScript files and package.module:factory.")
@click.option("--target", "-t", "targets", multiple=True, required=True,
              help="Model(s) the adversarial examples are judged on (never queried by the attacker), repeatable or "
                   "comma-separated; same forms as --source, no ensembles.")
@_shared_options
def transfer_command(sources: tuple[str, ...], targets: tuple[str, ...], dataset: str, attacks: tuple[str, ...],
                     eps: tuple[str, ...], norm: str, n: int | None, batch_size: int, steps: int | None,
                     alpha: float | None, restarts: int | None, params: tuple[str, ...], device: str, seed: int,
                     out: str, data_root: str | None, download: bool, trust_code: bool) -> None:
    """Transfer attacks: craft adversarial examples on surrogate models, judge them on target models.

    Writes reports/<run-id>/ with a source × target success heat map per attack and eps (the last row is
    each target attacked white-box, for reference), results.csv (one row per crafting model × target × attack
    × eps) and run.json. A transfer that beats the white-box attack on its target is flagged.

    \b
        trustkit bench transfer --source cnn,mlp --target resnet
        trustkit bench transfer -s softmax,mlp,cnn -t softmax,mlp,cnn --dataset mnist --data-root ../data --eps 0.1,0.2,0.3
        trustkit bench transfer -s cnn+mlp -t resnet20 --attack mifgsm,pgd --steps 20
        trustkit bench transfer -s cnn -t cnn-mnist-fgsm-rs-eps0.3 --dataset mnist --eps 0.3
    """
    from trustkit.blackbox.transfer import DEFAULT_ATTACKS, TransferConfig, run_transfer

    params_all, strict = _attack_params(steps, alpha, restarts, params)
    config = TransferConfig(sources=_split(sources), targets=_split(targets), dataset=dataset,
                            attacks=_split(attacks) or list(DEFAULT_ATTACKS), eps=_split(eps) or None, norm=norm,
                            n=n, batch_size=batch_size, device=device, seed=seed, out=out, data_root=data_root,
                            download=download, attack_params=params_all, strict_params=strict,
                            trust_code=trust_code)
    result = run_transfer(config)
    _print_transfer(result)
    _print_flags(result.checks)
    click.echo(f"report: {result.report}")


def _print_transfer(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from trustkit.attacks import format_eps

    console = Console()
    frame = result.results
    for (attack, norm, eps), _ in frame.groupby(["attack", "norm", "eps"], sort=False):
        matrix = result.matrix(attack, eps, norm)
        table = Table(title=f"success on target: {attack} ({norm}) eps {format_eps(eps)}", title_justify="left")
        table.add_column("crafted on \\ target")
        for target in matrix.columns:
            table.add_column(str(target), justify="right")
        for source, row in matrix.iterrows():
            table.add_row(str(source), *("–" if math.isnan(v) else f"{v:.1%}" for v in row.values))
        console.print(table)


@click.command(name="substitute", context_settings=CONTEXT)
@click.option("--target", "-t", required=True,
              help="The model attacked; the attacker only gets its labels. Zoo name, store entry, .safetensors "
                   "file, or (with --trust-code) a TorchScript file or package.module:factory.")
@click.option("--substitute", "-s", default="cnn", show_default=True,
              help="Zoo architecture of the attacker's substitute (softmax, mlp, cnn, cnn-small, resnet, resnet20, "
                   "preact-resnet18).")
@click.option("--seed-size", type=int, default=100, show_default=True,
              help="Unlabeled test images the attacker starts from (balanced over classes, held out from the "
                   "evaluation).")
@click.option("--rho", type=int, default=6, show_default=True,
              help="Jacobian augmentations (substitute epochs ρ): each doubles the training set; the substitute is "
                   "trained rho + 1 times. Queries = seed-size × 2^rho (100 × 2^6 = 6,400, the paper's count).")
@click.option("--epochs", type=int, default=10, show_default=True, help="Training epochs per round.")
@click.option("--lambda", "lam", type=float, default=0.1, show_default=True, help="Augmentation step λ.")
@click.option("--tau", type=int, default=3, show_default=True,
              help="Periodic step size: λ's sign flips every tau rounds (0: never).")
@click.option("--reservoir", type=int, help="Reservoir sampling: after --reservoir-after doublings, augment only "
              "this many randomly chosen images per round (κ); queries = seed·2^σ + κ·(ρ − σ).")
@click.option("--reservoir-after", type=int, default=3, show_default=True, help="Doublings σ before reservoir sampling.")
@click.option("--queries", "max_queries", type=int,
              help="Label-query budget: the last augmentation is cut so the total never exceeds it.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate of the substitute.")
@_shared_options
def substitute_command(target: str, substitute: str, seed_size: int, rho: int, epochs: int, lam: float, tau: int,
                       reservoir: int | None, reservoir_after: int, max_queries: int | None, lr: float, dataset: str,
                       attacks: tuple[str, ...], eps: tuple[str, ...], norm: str, n: int | None, batch_size: int,
                       steps: int | None, alpha: float | None, restarts: int | None, params: tuple[str, ...],
                       device: str, seed: int, out: str, data_root: str | None, download: bool,
                       trust_code: bool) -> None:
    """Substitute-model attack (Papernot et al. 2017): the attacker only queries the target for labels.

    It trains a substitute with Jacobian-based data augmentation from a small seed set, then transfers
    FGSM/PGD from it. Reports the queries used, the substitute's agreement with the target, and transfer
    success per eps beside the white-box attack on the target.

    \b
        trustkit bench substitute --target cnn
        trustkit bench substitute -t cnn -s mlp --dataset mnist --data-root ../data --eps 0.1,0.2,0.3
        trustkit bench substitute -t resnet --seed-size 150 --rho 5 --reservoir 400
        trustkit bench substitute -t cnn --queries 2000 --attack fgsm --eps 0.3
    """
    from trustkit.blackbox.substitute import (
        DEFAULT_ATTACKS,
        SubstituteConfig,
        run_substitute,
    )

    params_all, strict = _attack_params(steps, alpha, restarts, params)
    config = SubstituteConfig(target=target, substitute=substitute, dataset=dataset, seed_size=seed_size, rho=rho,
                              epochs=epochs, lam=lam, tau=tau or None, reservoir=reservoir,
                              reservoir_after=reservoir_after, max_queries=max_queries, lr=lr,
                              attacks=_split(attacks) or list(DEFAULT_ATTACKS), eps=_split(eps) or None, norm=norm,
                              n=n, batch_size=batch_size, device=device, seed=seed, out=out, data_root=data_root,
                              download=download, attack_params=params_all, strict_params=strict,
                              trust_code=trust_code)
    result = run_substitute(config)
    _print_substitute(result)
    _print_flags(result.checks)
    click.echo(f"report: {result.report}")


def _print_substitute(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from trustkit.attacks import format_eps

    frame = result.results
    first = frame.iloc[0]
    table = Table(title=f"{first['substitute']} substitute of {first['target']}: {int(first['queries']):,} label "
                        f"queries, agreement {first['agreement']:.1%}", title_justify="left")
    for column in ("attack", "norm", "eps", "success", "error rate", "white-box success"):
        table.add_column(column, justify="left" if column in ("attack", "norm") else "right")
    for row in frame.itertuples():
        table.add_row(row.attack, row.norm, format_eps(row.eps), f"{row.success_rate:.1%}", f"{row.error_rate:.1%}",
                      f"{row.white_box_success_rate:.1%}")
    Console().print(table)


__all__ = ["substitute_command", "transfer_command"]
