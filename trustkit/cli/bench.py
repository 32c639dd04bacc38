"""``trustkit bench``: attacks over an epsilon grid, a suite, or a workload with its own options (``fakes``,
``transfer``, ``substitute``: registered by their modules with :func:`bench_workload`)."""
from __future__ import annotations

from typing import Any, Callable

import click

from trustkit.cli import options as opt
from trustkit.cli.tables import print_flags, print_table

MODEL_HELP = ("Zoo name (softmax, mlp, cnn, cnn-small, resnet, resnet20, preact-resnet18, disc196; trained and cached on "
              "first use), a store entry "
              "such as cnn-mnist-fgsm-rs-eps0.3, a .safetensors checkpoint, or (with --trust-code) a TorchScript "
              "file or package.module:factory, or a library architecture torchvision:NAME / timm:NAME with "
              "--weights. Comma-separate several to compare them in one report.")


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


@click.command(cls=BenchCommand)
@click.argument("attack", required=False)
@opt.attack("attack_option",
            help="Attack(s) to run, repeatable or comma-separated (same as the ATTACK argument): fgsm, bim, "
                 "mifgsm, pgd, apgd-ce, apgd-dlr, apgd-t, cw, deepfool, strong, the black-box square and "
                 "hopskipjump (query budget: -p n_queries=N), or art:ClassName for any ART evasion attack.")
@opt.model_options(MODEL_HELP)
@opt.dataset()
@opt.eps("Perturbation budget(s) on the [0, 1] pixel scale: repeat or comma-separate; fractions such "
         "as 8/255 work. Default: the data set's grid.")
@opt.norm()
@opt.sample_options("Number of test images (seeded random subset). Default: the data set's.")
@opt.attack_options("Attack parameter passed through (repeatable), e.g. -p targets=3 -p confidence=0.5; for "
                    "art:ClassName these go to the ART class.")
@click.option("--engine", type=click.Choice(["trustkit", "art"]), default="trustkit", show_default=True,
              help="Whose implementation runs the named attacks: trustkit's own or ART's.")
@click.option("--targets", type=click.Choice(["random", "least-likely"]), default="random", show_default=True,
              help="Target labels of targeted attacks (-p targeted=true): a seeded random other class, or the "
                   "class the clean image scores lowest. Never the true label.")
@opt.precision()
@click.option("--independent-eps", is_flag=True,
              help="Attack every budget of the eps grid from scratch. By default a larger budget attacks only the "
                   "images the same attack left standing at the smaller ones (a point fooled at eps stays fooled at "
                   "every larger eps): the curve cannot rise with eps and fooled images are not paid for twice; "
                   "results.csv's 'reused' column counts the carried images.")
@opt.compile_model("torch.compile the attacked model, kept only if it is measured faster on a batch of the run's own "
                   "images (worth it on a GPU; on the CPU trustkit stays eager: measured slower there). run.json "
                   "records the decision.")
@click.option("--no-probes", is_flag=True,
              help="Skip the model sanity probes (unbounded attack, gradients, outputs, randomness).")
@click.option("--suite", "-s", help="Run a benchmark suite instead: a name (`trustkit list suites`) or a YAML file. "
              "Finished cells are cached, so an interrupted suite resumes where it stopped.")
@opt.engine_options
@click.option("--defense", "defenses", multiple=True,
              help="Input defense(s) in front of the model, repeatable or comma-separated: jpeg, bitdepth, median, "
                   "noise, with parameters as jpeg:quality=50; 'none' adds the undefended model. Each defense is "
                   "attacked naive and adaptive (BPDA / EOT).")
@opt.device()
@opt.seed("Seed for the sample subset and random starts.")
@opt.out("Folder that receives <run-id>/report.html, results.csv, per_class.csv and run.json.")
@opt.data_options()
@opt.own_model_data_options
def bench(attack: str | None, attack_option: tuple[str, ...], model: str, trust_code: bool, dataset: str,
          eps: tuple[str, ...], norm: str, n: int | None, batch_size: int, steps: int | None, alpha: float | None,
          restarts: int | None, params: tuple[str, ...], engine: str, targets: str, precision: str,
          independent_eps: bool, compile_model: bool, no_probes: bool,
          suite: str | None, jobs: int, no_cache: bool, max_cells: int, backend: str, ray_address: str | None,
          defenses: tuple[str, ...], device: str, seed: int, out: str, data_root: str | None,
          download: bool, **own: Any) -> None:
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
        trustkit bench fgsm,pgd,strong --model cnn-small,cnn-small-mnist-fast-eps0.3 --dataset mnist --eps 0.3
        trustkit bench pgd --model torchvision:resnet50 --weights r50.safetensors \\
            --dataset folder:/data/imagenet-val --image-size 224 --n 500 --eps 1/255,4/255   # your own

    Other studies run as workloads with their own options: `trustkit bench fakes --help` (can generated
    faces be detected, and can the detectors be evaded?), `trustkit bench transfer --help` (source × target
    transfer matrix) and `trustkit bench substitute --help` (substitute model trained from label queries).
    """
    opt.check_backend(backend, ray_address)
    model, dataset = opt.own_model_data(model, dataset, own)
    from trustkit.attacks.spec import parse_param
    from trustkit.engine import BenchConfig, run_bench, run_suite

    names = opt.split_list(([attack] if attack else []) + list(attack_option))
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
                           seed=seed if ctx.get_parameter_source("seed") is click.core.ParameterSource.COMMANDLINE else None,
                           backend=backend, ray_address=ray_address, curve_reuse=not independent_eps)
        print_results(result.results, result.checks)
        print_parts(result)
        click.echo(f"report: {result.report}")
        opt.exit_on_failed_cells(result.run_info)
        return
    if not names:
        raise click.UsageError("name an attack: trustkit bench ATTACK (e.g. fgsm) or --attack fgsm,pgd")
    config = BenchConfig(attacks=names, model=model, dataset=dataset, eps=opt.split_list(eps) or None,
                         norm=norm, n=n, batch_size=batch_size, device=device, seed=seed, out=out,
                         data_root=data_root, download=download, engine=engine, probes=not no_probes,
                         # --steps/--alpha/--restarts go to every attack that takes them; one that no attack
                         # takes is an error (bim --restarts 5 used to be ignored without a word)
                         strict_params={**{k: v for k, v in (("steps", steps), ("alpha", alpha),
                                                             ("restarts", restarts)) if v is not None},
                                        **dict(parse_param(p) for p in params)}, jobs=jobs, use_cache=not no_cache,
                         defenses=opt.split_list(defenses), targets=targets, precision=precision, max_cells=max_cells,
                         trust_code=trust_code, backend=backend, ray_address=ray_address,
                         curve_reuse=not independent_eps, compile=compile_model)
    result = run_bench(config)
    print_results(result.results, result.checks)
    click.echo(f"report: {result.report}")
    opt.exit_on_failed_cells(result.run_info)


def results_table(results: Any) -> dict[str, Any]:
    """What :func:`print_table` gets for a bench or suite frame: keys, values, title, formats."""
    from trustkit.attacks import format_eps
    from trustkit.cli.tables import percent
    from trustkit.studies.bench import KEY_COLUMNS  # the columns that tell bench rows apart

    several = results[["model", "dataset"]].drop_duplicates().shape[0] > 1
    title = (f"{len(results)} cells" if several else
             f"{results['model'].iloc[0]} on {results['dataset'].iloc[0]} ({int(results['n'].iloc[0])} images)")
    values = {"clean": lambda row: percent(row["clean_accuracy"]),
              "robust": lambda row: percent(row["robust_accuracy"]),
              "success": lambda row: percent(row["success_rate"]), "seconds": lambda row: f"{row['seconds']:.2f}"}
    return {"keys": KEY_COLUMNS, "values": values, "title": title, "formats": {"eps": format_eps},
            "title_keys": [] if several else ["model", "dataset"]}


def print_results(results: Any, checks: list) -> None:
    """The results table, the sanity flags, and a note on each weak evaluation."""
    from rich.console import Console
    from rich.markup import escape

    print_table(results, **results_table(results))
    print_flags(checks)
    from trustkit.sanity import evaluation_strength

    console = Console()
    for _, group in results.groupby(["model", "dataset", "norm"], sort=False):
        strength = evaluation_strength(group)
        if strength["level"] == "weak":
            console.print(f"[bold yellow]{escape(str(group['model'].iloc[0]))}:[/] {strength['note']} For a strong "
                          f"evaluation run: {escape(strength['command'])}", markup=True, highlight=False)


# a suite's other studies (``studies:``) and the command module whose printer shows them on the terminal
PART_PRINTERS = {"certify": "trustkit.cli.certify:print_certify",
                 "corruptions": "trustkit.cli.corruptions:print_corruptions",
                 "calibration": "trustkit.cli.calibration:print_calibration"}


def print_parts(result: Any) -> None:
    """After a suite's attack table, each other study's own table (their flags are already printed)."""
    import importlib
    from types import SimpleNamespace

    from trustkit.studies.combined import part_tables

    parts = result.run_info.get("config", {}).get("parts") if result.run_info.get("kind") == "combined" else None
    if not parts:
        return
    kinds = [p["kind"] for p in parts]
    for i, kind in enumerate(kinds[1:], start=1):
        if kind not in PART_PRINTERS:
            continue
        module, _, name = PART_PRINTERS[kind].partition(":")
        tables = part_tables(result.tables, kinds, i)
        getattr(importlib.import_module(module), name)(SimpleNamespace(results=tables["results.csv"], tables=tables,
                                                                       checks=[]))
