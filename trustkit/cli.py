"""The ``trustkit`` command: bench, train, list.

Bad input ends with one line on stderr (``error: <problem>; <fix>``) and exit code 2; ``--debug`` shows
the traceback instead.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Callable, Sequence

import click

from trustkit._version import __version__
from trustkit.cli_types import SEED
from trustkit.errors import EXIT_USAGE, TrustkitError

EXIT_INTERRUPTED = 130


def _split_list(values: Sequence[str]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: options accept repeats and comma lists alike."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="trustkit")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or status lines.")
@click.pass_context
def main(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """trustkit: how far can you trust an image model?

    Attack a model, measure its robust accuracy, and get an HTML + CSV report. Start with

        trustkit bench fgsm --model resnet

    which trains a ResNet-18 on the embedded 8×8 digits (cached after the first run), attacks it with FGSM
    over an epsilon grid and writes reports/<run-id>/report.html.
    """
    from trustkit.runtime import set_quiet

    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    set_quiet(quiet)
    from trustkit.models.store import sweep_home

    sweep_home()  # temporaries left by killed runs (older than an hour, unlocked)


class BenchCommand(click.Command):
    """``trustkit bench ATTACK ...``, or ``trustkit bench WORKLOAD ...`` for studies with their own options
    (``fakes``, ...): the first argument picks the workload, whose command then parses the rest."""

    workloads: dict[str, click.Command] = {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.workloads:
            ctx.meta["trustkit.workload"] = (args[0], args[1:])
            return []
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        workload = ctx.meta.pop("trustkit.workload", None)
        if workload is None:
            return super().invoke(ctx)
        name, rest = workload
        command = self.workloads[name]
        with command.make_context(f"{ctx.info_name} {name}", rest, parent=ctx.parent) as sub_ctx:
            return command.invoke(sub_ctx)


def bench_workload(name: str) -> Callable[[click.Command], click.Command]:
    """Register ``command`` as ``trustkit bench NAME``."""
    def register(command: click.Command) -> click.Command:
        BenchCommand.workloads[name] = command
        return command
    return register


DATA_ROOT_HELP = "Folder with local data sets (else $TRUSTKIT_DATA, else $TRUSTKIT_HOME/data)."
DOWNLOAD_HELP = "Fetch a missing MNIST/CIFAR-10 with torchvision into the first data root (needs internet)."
TRUST_CODE_HELP = ("Allow --model to be a TorchScript file or package.module:factory. These are programs: loading one "
                   "runs its code, so pass this only for models whose author you trust. trustkit checkpoints "
                   "(.safetensors) and zoo names never need it.")


@main.command(cls=BenchCommand)
@click.argument("attack", required=False)
@click.option("--attack", "-a", "attack_option", multiple=True,
              help="Attack(s) to run, repeatable or comma-separated (same as the ATTACK argument): fgsm, bim, "
                   "mifgsm, pgd, apgd-ce, apgd-dlr, apgd-t, cw, deepfool, strong, the black-box square and "
                   "hopskipjump (query budget: -p n_queries=N), or art:ClassName for any ART evasion attack.")
@click.option("--model", "-m", default="cnn", show_default=True,
              help="Zoo name (softmax, mlp, cnn, cnn-small, resnet, resnet20, preact-resnet18; trained and cached on "
                   "first use), a store entry "
                   "such as cnn-mnist-fgsm-rs-eps0.3, a .safetensors checkpoint, or (with --trust-code) a TorchScript "
                   "file or package.module:factory. Comma-separate several to compare them in one report.")
@click.option("--trust-code", is_flag=True, help=TRUST_CODE_HELP)
@click.option("--dataset", "-d", default="digits", show_default=True,
              help="digits (embedded), mnist, cifar10, faces (UTKFace, gender) or olivetti (40 people).")
@click.option("--eps", "-e", multiple=True,
              help="Perturbation budget(s) on the [0, 1] pixel scale: repeat or comma-separate; fractions such "
                   "as 8/255 work. Default: the data set's grid.")
@click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True, help="Threat model norm.")
@click.option("--n", "-n", "n", type=int, help="Number of test images (seeded random subset). Default: the data set's.")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Images per attack batch.")
@click.option("--steps", type=int, help="Iterations of iterative attacks (PGD default 10).")
@click.option("--alpha", type=float, help="Step size of iterative attacks (PGD default 2.5·eps/steps).")
@click.option("--restarts", type=int, help="Random restarts of PGD and APGD (default 1).")
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE",
              help="Attack parameter passed through (repeatable), e.g. -p targets=3 -p confidence=0.5; for "
                   "art:ClassName these go to the ART class.")
@click.option("--engine", type=click.Choice(["trustkit", "art"]), default="trustkit", show_default=True,
              help="Whose implementation runs the named attacks: trustkit's own or ART's.")
@click.option("--targets", type=click.Choice(["random", "least-likely"]), default="random", show_default=True,
              help="Target labels of targeted attacks (-p targeted=true): a seeded random other class, or the "
                   "class the clean image scores lowest. Never the true label.")
@click.option("--no-probes", is_flag=True,
              help="Skip the model sanity probes (unbounded attack, gradients, outputs, randomness).")
@click.option("--suite", "-s", help="Run a benchmark suite instead: a name (`trustkit list suites`) or a YAML file. "
              "Finished cells are cached, so an interrupted suite resumes where it stopped.")
@click.option("--jobs", "-j", type=int, default=1, show_default=True,
              help="Evaluate cells in this many processes (each cell's result equals a serial run's).")
@click.option("--no-cache", is_flag=True, help="Recompute every cell instead of reusing cached ones.")
@click.option("--max-cells", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Refuse a run that expands to more cells than this, before anything runs.")
@click.option("--defense", "defenses", multiple=True,
              help="Input defense(s) in front of the model, repeatable or comma-separated: jpeg, bitdepth, median, "
                   "noise, with parameters as jpeg:quality=50; 'none' adds the undefended model. Each defense is "
                   "attacked naive and adaptive (BPDA / EOT).")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda or mps.")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for the sample subset and random starts.")
@click.option("--out", "-o", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives <run-id>/report.html, results.csv, per_class.csv and run.json.")
@click.option("--data-root", type=click.Path(file_okay=False), help=DATA_ROOT_HELP)
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
def bench(attack: str | None, attack_option: tuple[str, ...], model: str, trust_code: bool, dataset: str, eps: tuple[str, ...], norm: str, n: int | None, batch_size: int,
          steps: int | None, alpha: float | None, restarts: int | None, params: tuple[str, ...], engine: str,
          targets: str, no_probes: bool, suite: str | None, jobs: int, no_cache: bool, max_cells: int, defenses: tuple[str, ...], device: str, seed: int, out: str,
          data_root: str | None, download: bool) -> None:
    """Attack a model over an epsilon grid and write an HTML + CSV report.

    ATTACK is an attack name or a comma-separated list (`trustkit list attacks` shows them). Examples:

    \b
        trustkit bench fgsm --model resnet
        trustkit bench fgsm,pgd,strong --model cnn --dataset mnist --data-root ../data --eps 0.1,0.3
        trustkit bench pgd --model my_model.safetensors --dataset cifar10 --eps 8/255 --restarts 5
        trustkit bench cw,deepfool --norm l2 --eps 0.5,1,2
        trustkit bench fgsm,pgd --engine art           # the same attacks, ART's implementation
        trustkit bench art:HopSkipJump -p max_iter=20 -p max_eval=500 --eps 0.3
        trustkit bench square,hopskipjump,pgd -p n_queries=1000 --eps 0.3   # black-box: queries per image
        trustkit bench --suite digits-quick --jobs 2
        trustkit bench pgd --model cnn --defense none,jpeg,bitdepth:bits=3   # naive and adaptive (BPDA/EOT)
        trustkit bench fgsm,pgd,strong --model cnn,cnn-mnist-fgsm-rs-eps0.3 --dataset mnist   # before/after

    Other studies run as workloads with their own options: `trustkit bench fakes --help` (can generated
    faces be detected, and can the detectors be evaded?), `trustkit bench transfer --help` (source × target
    transfer matrix) and `trustkit bench substitute --help` (substitute model trained from label queries).
    """
    from trustkit.bench.run import BenchConfig, run_bench, run_suite
    from trustkit.bench.spec import parse_param

    names = _split_list(([attack] if attack else []) + list(attack_option))
    if suite:
        ctx = click.get_current_context()
        clashing = [f"--{p.replace('_', '-')}" for p in ("model", "dataset", "eps", "norm", "steps", "alpha", "restarts",
                                                           "params", "engine", "batch_size", "defenses")
                    if ctx.get_parameter_source(p) is click.core.ParameterSource.COMMANDLINE]
        if names or clashing:
            raise click.UsageError(f"--suite takes its models, attacks and budgets from the suite file; drop "
                                   f"{', '.join((['ATTACK'] if names else []) + clashing)} or edit the suite")
        result = run_suite(suite, out=out, device=device, data_root=data_root, download=download, jobs=jobs,
                           use_cache=not no_cache, probes=not no_probes, n=n, max_cells=max_cells, trust_code=trust_code,
                           seed=seed if ctx.get_parameter_source("seed") is click.core.ParameterSource.COMMANDLINE else None)
        _print_results(result.results, result.checks)
        click.echo(f"report: {result.report}")
        return
    if not names:
        raise click.UsageError("name an attack: trustkit bench ATTACK (e.g. fgsm) or --attack fgsm,pgd")
    config = BenchConfig(attacks=names, model=model, dataset=dataset, eps=_split_list(eps) or None,
                         norm=norm, n=n, batch_size=batch_size, device=device, seed=seed, out=out,
                         data_root=data_root, download=download, engine=engine, probes=not no_probes,
                         # --steps/--alpha/--restarts go to every attack that takes them; one that no attack
                         # takes is an error (bim --restarts 5 used to be ignored without a word)
                         strict_params={**{k: v for k, v in (("steps", steps), ("alpha", alpha),
                                                             ("restarts", restarts)) if v is not None},
                                        **dict(parse_param(p) for p in params)}, jobs=jobs, use_cache=not no_cache,
                         defenses=_split_list(defenses), targets=targets, max_cells=max_cells, trust_code=trust_code)
    result = run_bench(config)
    _print_results(result.results, result.checks)
    click.echo(f"report: {result.report}")


def _print_results(results: Any, checks: list) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from trustkit.attacks import format_eps

    several = results[["model", "dataset"]].drop_duplicates().shape[0] > 1
    title = (f"{len(results)} cells" if several else
             f"{results['model'].iloc[0]} on {results['dataset'].iloc[0]} ({int(results['n'].iloc[0])} images)")
    table = Table(title=title)
    columns = (["model", "dataset"] if several else []) + ["attack", "norm", "eps", "clean", "robust", "success", "seconds"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "dataset", "attack", "norm") else "right")
    for row in results.itertuples():
        label = row.attack if row.engine == "trustkit" or row.attack.startswith("art:") else f"{row.attack} ({row.engine})"
        label += f" (targeted: {row.targets})" if isinstance(row.targets, str) and row.targets else ""
        table.add_row(*([row.model, row.dataset] if several else []), label, row.norm, format_eps(row.eps), f"{row.clean_accuracy:.1%}",
                      f"{row.robust_accuracy:.1%}", f"{row.success_rate:.1%}", f"{row.seconds:.2f}")
    console = Console()
    console.print(table)
    for check in checks:
        if check.status == "flag":
            console.print(f"[bold yellow]sanity flag:[/] {escape(check.name)}: {escape(check.detail)}", markup=True,
                          highlight=False)
    from trustkit.sanity import evaluation_strength

    for _, group in results.groupby(["model", "dataset", "norm"], sort=False):
        strength = evaluation_strength(group)
        if strength["level"] == "weak":
            console.print(f"[bold yellow]{escape(str(group['model'].iloc[0]))}:[/] {strength['note']} For a strong "
                          f"evaluation run: {escape(strength['command'])}", markup=True, highlight=False)


@main.command()
@click.option("--model", "-m", required=True,
              help="Zoo architecture: softmax, mlp, cnn, cnn-small, resnet, resnet20, preact-resnet18.")
@click.option("--dataset", "-d", default="digits", show_default=True,
              help="digits (embedded), mnist, cifar10, faces (UTKFace, gender) or olivetti (40 people).")
@click.option("--epochs", type=int, help="Training epochs (default: tuned per model and data set).")
@click.option("--batch-size", type=int, help="Mini-batch size.")
@click.option("--lr", type=float, help="Peak learning rate of the cyclic schedule.")
@click.option("--schedule", type=click.Choice(["one-cycle", "triangle"]),
              help="Learning-rate schedule: one-cycle (cosine, the default for most models) or triangle (linear up "
                   "to the peak at 40% of training, then down to 0, as in fast AT; the default for cnn-small).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for initialisation and shuffling.")
@click.option("--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, cuda or mps.")
@click.option("--data-root", type=click.Path(file_okay=False), help=DATA_ROOT_HELP)
@click.option("--download", is_flag=True, help=DOWNLOAD_HELP)
@click.option("--out", "-o", type=click.Path(dir_okay=False),
              help="Write the checkpoint here (one .safetensors file, metadata in its header) instead of the "
                   "store entry bench uses.")
@click.option("--adv", "recipe", default="clean", show_default=True,
              help="Training recipe: clean, or adversarial training fgsm-rs (fast AT, Wong et al. 2020), pgd "
                   "(Madry et al. 2018) or trades (Zhang et al. 2019).")
@click.option("--eps", "eps", help="Adversarial-training budget (linf, pixel scale [0, 1]; 8/255 works).")
@click.option("--alpha", type=float, help="Attack step size (fgsm-rs: 1.25·eps; pgd, trades: 2.5·eps/steps).")
@click.option("--attack-steps", type=int, help="Attack iterations of pgd / trades training (default 10).")
@click.option("--beta", type=float, help="TRADES robustness weight (default 6).")
@click.option("--compile", "compile_model", is_flag=True, help="torch.compile the model (worth it on a GPU).")
def train(model: str, dataset: str, epochs: int | None, batch_size: int | None, lr: float | None,
          schedule: str | None, seed: int, device: str, data_root: str | None, download: bool, out: str | None,
          recipe: str, eps: str | None, alpha: float | None, attack_steps: int | None, beta: float | None,
          compile_model: bool) -> None:
    """Train a zoo classifier, clean or adversarially, and store it (bench uses it as --model NAME).

    Adversarial training holds out 512 training images and keeps the epoch with the best PGD accuracy on
    them, so catastrophic overfitting cannot spoil the final model. The store entry is named after the
    recipe, e.g. cnn-mnist-fgsm-rs-eps0.3. Under `torchrun --nproc_per_node N -m trustkit train ...` the
    processes train data-parallel.

    \b
        trustkit train --model cnn --dataset mnist --data-root ../data --epochs 3
        trustkit train --model cnn --dataset mnist --data-root ../data --adv fgsm-rs --eps 0.3
        trustkit bench fgsm,pgd,strong --dataset mnist --data-root ../data --model cnn,cnn-mnist-fgsm-rs-eps0.3
    """
    from trustkit.errors import InvalidArgumentError
    from trustkit.train import train_model

    for name, value in (("--epochs", epochs), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise InvalidArgumentError(f"{name} must be at least 1, got {value}")
    if lr is not None and not (math.isfinite(lr) and lr > 0):  # nan <= 0 is False: test finiteness first
        raise InvalidArgumentError(f"--lr must be a finite number > 0, got {lr}")
    from trustkit.attacks import parse_eps

    if recipe != "clean" and eps is None:
        raise InvalidArgumentError(f"--adv {recipe} needs a budget: add --eps, e.g. --eps 0.3 or --eps 8/255")
    result = train_model(model, dataset, seed=seed, device=device, data_root=data_root, out=out, download=download,
                         recipe=recipe, epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule,
                         eps=parse_eps(eps) if eps is not None else None, alpha=alpha, attack_steps=attack_steps,
                         beta=beta, compile=compile_model or None)
    if result.path is None:  # a non-zero rank under torchrun: rank 0 reports
        return
    click.echo(f"test accuracy {result.history.final_accuracy:.2%} after {len(result.history.epochs)} epochs "
               f"({result.history.seconds:.1f} s); checkpoint: {result.path}")
    if result.history.best_epoch:
        best = result.history.epochs[result.history.best_epoch - 1]
        click.echo(f"kept epoch {result.history.best_epoch}: validation clean {best['val_accuracy']:.1%}, "
                   f"PGD-10 {best['val_pgd_accuracy']:.1%}; use it as --model {result.path.stem}")


LISTABLE = ("models", "attacks", "datasets", "suites", "checkpoints")


@main.command(name="list")
@click.argument("what", type=click.Choice(LISTABLE), required=False)
def list_(what: str | None) -> None:
    """Show what exists: models, attacks, datasets, checkpoints (default: all)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kind in [what] if what else LISTABLE:
        table = Table(title=kind, title_justify="left")
        if kind == "suites":
            from trustkit.bench.suite import available_suites, load_suite

            table.add_column("suite")
            table.add_column("cells", justify="right")
            table.add_column("description")
            table.add_column("file")
            for name, path in available_suites().items():
                try:
                    suite = load_suite(str(path))
                    table.add_row(name, str(len(suite.cells())), suite.description, str(path))
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
        console.print(table)


@main.group()
def report() -> None:
    """Work with finished runs: compare them in a leaderboard."""


@report.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "-o", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder that receives <run-id>/report.html, leaderboard.csv and run.json.")
def compare(run_dirs: tuple[str, ...], out: str) -> None:
    """Leaderboard across runs: clean and worst-case robust accuracy per threat model, sorted, with each run's
    sanity flags.

    \b
        trustkit report compare reports/*-suite-digits-quick reports/*-fgsm-cnn-mnist
    """
    from trustkit.report.compare import compare_runs

    folder = compare_runs(list(run_dirs), out)
    click.echo(f"report: {folder / 'report.html'}")


from trustkit.detection.cli import data_options as _fake_data_options  # noqa: E402
from trustkit.detection.cli import detect as _detect  # noqa: E402
from trustkit.detection.cli import eval_options as _fake_eval_options  # noqa: E402

main.add_command(_detect)


@bench_workload("fakes")
@click.command()
@_fake_data_options
@_fake_eval_options
def bench_fakes(**options: Any) -> None:
    """Can generated images be caught, and can the detectors be evaded? Trains the generators (if missing),
    builds balanced real/fake sets, trains the CNN, spectral and DCT detectors on each generator, and reports
    in-distribution and cross-generator AUC, degradations and PGD evasion (same as `trustkit detect eval`).

    \b
        trustkit bench fakes --data-root ../data                      # UTKFace faces, four generators
        trustkit bench fakes --dataset digits --generators dcgan,conv-vae --n-train 500 --n-test 300
    """
    from trustkit.detection.cli import run_and_print

    run_and_print(**options)


from trustkit.blackbox.cli import substitute_command as _substitute  # noqa: E402
from trustkit.blackbox.cli import transfer_command as _transfer  # noqa: E402

bench_workload("transfer")(_transfer)  # trustkit bench transfer: source × target success matrix
bench_workload("substitute")(_substitute)  # trustkit bench substitute: Papernot et al. 2017


def _registry(kind: str):  # noqa: ANN202
    if kind == "models":
        from trustkit.models import MODELS
        return MODELS
    if kind == "attacks":
        from trustkit.attacks import ATTACKS
        return ATTACKS
    from trustkit.data import DATASETS
    return DATASETS


from trustkit.generative.cli import gen; main.add_command(gen)  # noqa: E402,E702 - the `trustkit gen` group
from trustkit.privacy.cli import privacy; main.add_command(privacy)  # noqa: E402,E702 - `trustkit privacy`

def run(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        main.main(args=args, prog_name="trustkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors from click itself: keep them to one line
        if debug:
            raise
        where = f" (see 'trustkit {exc.ctx.info_name} --help')" if getattr(exc, "ctx", None) and exc.ctx.parent else \
            " (see 'trustkit --help')"
        click.echo(f"error: {exc.format_message()}{where}", err=True)
        return EXIT_USAGE
    except TrustkitError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        click.echo("error: interrupted; nothing half-written was kept (finished cells and checkpoints are)", err=True)
        return EXIT_INTERRUPTED
    return 0


def entry() -> None:
    sys.exit(run())


if __name__ == "__main__":
    entry()
