"""The black-box studies, mounted as ``trustkit bench transfer`` and ``trustkit bench substitute`` (bench
workloads).

The query-based attacks (``square``, ``hopskipjump``) are ordinary attacks of ``trustkit bench ATTACK``. Errors
raise TrustkitError, which the main entry point turns into one line and exit code 2.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import click

from trustkit.cli import options as opt
from trustkit.cli.bench import bench_workload
from trustkit.cli.tables import percent, print_flags, print_table

TRUST_CODE_HELP = ("Allow models that are TorchScript files or package.module:factory. These are programs: "
                   "loading one runs its code, so pass this only for models whose author you trust. Zoo "
                   "names and .safetensors checkpoints never need it.")
TRANSFER_TARGET_HELP = ("Model(s) the adversarial examples are judged on (never queried by the attacker), repeatable "
                        "or comma-separated; same forms as --source, no ensembles.")
SUBSTITUTE_TARGET_HELP = ("The model attacked; the attacker only gets its labels. Zoo name, store entry, .safetensors "
                          "file, or (with --trust-code) a TorchScript file or package.module:factory.")


def _attack_params(steps: int | None, alpha: float | None, restarts: int | None,
                   params: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    from trustkit.attacks.spec import parse_param

    return {"steps": steps, "alpha": alpha, "restarts": restarts}, dict(parse_param(p) for p in params)


def _target(several: bool) -> opt.Decorator:
    """--target/-t: the judged models of transfer (several), the one attacked model of substitute."""
    return click.option("--target", "-t", *(["targets"] if several else []), multiple=several, required=True,
                        help=TRANSFER_TARGET_HELP if several else SUBSTITUTE_TARGET_HELP)


_shared_options = opt.compose(  # every black-box study: data, budgets, attack parameters, device, seed, output
    opt.dataset(),
    opt.attack("attacks", help="Attack(s) crafted on the attacker's model, repeatable or comma-separated (default "
                               "fgsm,pgd). Iterative attacks return their last iterate (no early stopping) unless "
                               "-p early_stop=true."),
    opt.eps("Perturbation budget(s) on the [0, 1] pixel scale: repeat or comma-separate; 8/255 works. "
            "Default: the data set's grid."),
    opt.norm(),
    opt.sample_options("Number of test images judged (seeded random subset). Default: the data set's."),
    opt.attack_options("Attack parameter passed through (repeatable), e.g. -p decay=0.5."),
    opt.device(),
    opt.seed("Seed for the image subsets, training and random starts."),
    opt.out("Folder that receives <run-id>/report.html, results.csv and run.json."),
    opt.data_options(),
    opt.trust_code(TRUST_CODE_HELP),
    opt.run_options,
    opt.own_data_options,
)


def _run(run: Any, config: Any, printer: Any) -> None:
    """Run a black-box study through the engine, print its table, flags and report path; exit 1 when cells
    failed."""
    result = run(config)
    printer(result)
    print_flags(result.checks)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


@bench_workload("transfer")  # trustkit bench transfer: source × target success matrix
@click.command(name="transfer", context_settings=opt.CONTEXT)
@click.option("--source", "-s", "sources", multiple=True, required=True,
              help="Model(s) the attacker crafts on (it has their gradients), repeatable or comma-separated; join "
                   "models with '+' for an ensemble that averages their logits (cnn+mlp). Zoo names (softmax, mlp, "
                   "cnn, resnet, resnet20; trained and cached on first use), store entries, .safetensors files, "
                   "or (with --trust-code) TorchScript files and package.module:factory.")
@_target(several=True)
@_shared_options
def transfer_command(sources: tuple[str, ...], targets: tuple[str, ...], dataset: str, attacks: tuple[str, ...],
                     eps: tuple[str, ...], norm: str, n: int | None, batch_size: int, steps: int | None,
                     alpha: float | None, restarts: int | None, params: tuple[str, ...], device: str, seed: int,
                     out: str, data_root: str | None, download: bool, trust_code: bool, jobs: int, no_cache: bool,
                     backend: str, ray_address: str | None, **own: Any) -> None:
    """Transfer attacks: craft adversarial examples on surrogate models, judge them on target models.

    Writes reports/<run-id>/ with a source × target success heat map per attack and eps (the last row is
    each target attacked white-box, for reference), results.csv (one row per crafting model × target × attack
    × eps) and run.json. A transfer that beats the white-box attack on its target is flagged.

    \b
        trustkit bench transfer --source cnn,mlp --target resnet
        trustkit bench transfer -s softmax,mlp,cnn -t softmax,mlp,cnn --dataset mnist --data-root ../data --eps 0.1,0.2,0.3
        trustkit bench transfer -s cnn+mlp -t resnet20 --attack mifgsm,pgd --steps 20
        trustkit bench transfer -s cnn -t cnn-small-mnist-fast-eps0.3 --dataset mnist --eps 0.3
    """
    from trustkit.blackbox.transfer import DEFAULT_ATTACKS, TransferConfig
    from trustkit.engine import run_transfer

    opt.check_backend(backend, ray_address)
    _, dataset = opt.own_model_data(None, dataset, own)

    split = opt.split_list
    params_all, strict = _attack_params(steps, alpha, restarts, params)
    config = TransferConfig(sources=split(sources), targets=split(targets), dataset=dataset,
                            attacks=split(attacks) or list(DEFAULT_ATTACKS), eps=split(eps) or None, norm=norm,
                            n=n, batch_size=batch_size, device=device, seed=seed, out=out, data_root=data_root,
                            download=download, attack_params=params_all, strict_params=strict,
                            trust_code=trust_code, jobs=jobs, use_cache=not no_cache, backend=backend,
                            ray_address=ray_address)
    _run(run_transfer, config, print_transfer)


def print_transfer(result: Any) -> None:
    """One success matrix per (attack, norm, eps): its rows are the crafting models, then the white-box row."""
    import pandas as pd

    from trustkit.attacks import format_eps

    for (attack, norm, eps), _ in result.results.groupby(["attack", "norm", "eps"], sort=False):
        matrix = result.matrix(attack, eps, norm)
        frame = pd.DataFrame({"source": [str(source) for source in matrix.index]})
        values = {str(target): (lambda row, c=column: "–" if math.isnan(v := matrix.iloc[row.name, c]) else f"{v:.1%}")
                  for column, target in enumerate(matrix.columns)}
        print_table(frame, ["source"], values, headers={"source": "crafted on \\ target"},
                    title=f"success on target: {attack} ({norm}) eps {format_eps(eps)}")


@bench_workload("substitute")  # trustkit bench substitute: Papernot et al. 2017
@click.command(name="substitute", context_settings=opt.CONTEXT)
@_target(several=False)
@click.option("--substitute", "-s", default="cnn", show_default=True,
              help="Zoo architecture of the attacker's substitute (softmax, mlp, cnn, cnn-small, resnet, resnet20, "
                   "preact-resnet18, disc196).")
@click.option("--seed-size", type=int, default=100, show_default=True,
              help="Unlabeled test images the attacker starts from (balanced over classes, held out from the "
                   "evaluation).")
@click.option("--rho", type=int, default=6, show_default=True,
              help="Jacobian augmentations (substitute epochs ρ): each doubles the training set; the substitute is "
                   "trained rho + 1 times. Queries = seed-size × 2^rho (100 × 2^6 = 6,400, the paper's count).")
@opt.epochs("Training epochs per round.", default=10)
@click.option("--lambda", "lam", type=float, default=0.1, show_default=True, help="Augmentation step λ.")
@click.option("--tau", type=int, default=3, show_default=True,
              help="Periodic step size: λ's sign flips every tau rounds (0: never).")
@click.option("--reservoir", type=int, help="Reservoir sampling: after --reservoir-after doublings, augment only "
              "this many randomly chosen images per round (κ); queries = seed·2^σ + κ·(ρ − σ).")
@click.option("--reservoir-after", type=int, default=3, show_default=True, help="Doublings σ before reservoir sampling.")
@opt.queries("max_queries", "Label-query budget: the last augmentation is cut so the total never exceeds it.")
@opt.lr("Adam learning rate of the substitute.", default=1e-3)
@_shared_options
def substitute_command(target: str, substitute: str, seed_size: int, rho: int, epochs: int, lam: float, tau: int,
                       reservoir: int | None, reservoir_after: int, max_queries: int | None, lr: float, dataset: str,
                       attacks: tuple[str, ...], eps: tuple[str, ...], norm: str, n: int | None, batch_size: int,
                       steps: int | None, alpha: float | None, restarts: int | None, params: tuple[str, ...],
                       device: str, seed: int, out: str, data_root: str | None, download: bool,
                       trust_code: bool, jobs: int, no_cache: bool, backend: str, ray_address: str | None,
                       **own: Any) -> None:
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
    from trustkit.blackbox.substitute import DEFAULT_ATTACKS, SubstituteConfig
    from trustkit.engine import run_substitute

    opt.check_backend(backend, ray_address)
    _, dataset = opt.own_model_data(None, dataset, own)

    split = opt.split_list
    params_all, strict = _attack_params(steps, alpha, restarts, params)
    config = SubstituteConfig(target=target, substitute=substitute, dataset=dataset, seed_size=seed_size, rho=rho,
                              epochs=epochs, lam=lam, tau=tau or None, reservoir=reservoir,
                              reservoir_after=reservoir_after, max_queries=max_queries, lr=lr,
                              attacks=split(attacks) or list(DEFAULT_ATTACKS), eps=split(eps) or None, norm=norm,
                              n=n, batch_size=batch_size, device=device, seed=seed, out=out, data_root=data_root,
                              download=download, attack_params=params_all, strict_params=strict,
                              trust_code=trust_code, jobs=jobs, use_cache=not no_cache, backend=backend,
                              ray_address=ray_address)
    _run(run_substitute, config, print_substitute)


def print_substitute(result: Any) -> None:
    """Transfer success from the substitute per (attack, norm, eps), beside the white-box attack on the target."""
    from trustkit.attacks import format_eps

    frame = result.results
    first = frame.iloc[0]
    values = {"success": lambda row: percent(row["success_rate"]), "error rate": lambda row: percent(row["error_rate"]),
              "white-box success": lambda row: percent(row["white_box_success_rate"])}
    print_table(frame, ["target", "substitute", "attack", "norm", "eps"], values, formats={"eps": format_eps},
                title_keys=["target", "substitute"],
                title=f"{first['substitute']} substitute of {first['target']}: {int(first['queries']):,} label "
                      f"queries, agreement {first['agreement']:.1%}")
