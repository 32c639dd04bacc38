"""The ``trustkit`` command: bench, train, list, report, detect, gen, privacy, explain (one module per command
group).

Bad input ends with one line on stderr (``error: <problem>; <fix>``) and exit code 2; ``--debug`` shows
the traceback instead. The command modules import their workloads inside the command functions, so
``trustkit --help`` loads none of them.
"""
from __future__ import annotations

import sys
from typing import Sequence

import click

from trustkit._version import __version__
from trustkit.cli.options import CONTEXT
from trustkit.errors import EXIT_USAGE, TrustkitError

EXIT_INTERRUPTED = 130


@click.group(context_settings=CONTEXT)
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
    from trustkit.atomic import sweep_home

    sweep_home()  # temporaries left by killed runs (older than an hour, unlocked)


def _register() -> None:
    """Mount the command modules; importing blackbox and detect registers their ``trustkit bench`` workloads."""
    import trustkit.cli.blackbox  # noqa: F401 - registers the bench workloads transfer and substitute
    import trustkit.cli.calibration  # noqa: F401 - registers the bench workload calibration
    import trustkit.cli.corruptions  # noqa: F401 - registers the bench workload corruptions
    from trustkit.cli.bench import bench
    from trustkit.cli.certify import certify
    from trustkit.cli.detect import detect as detect_group
    from trustkit.cli.explain import explain
    from trustkit.cli.gen import gen
    from trustkit.cli.listing import list_
    from trustkit.cli.privacy import privacy
    from trustkit.cli.report import report
    from trustkit.cli.train import train

    for command in (bench, train, list_, report, detect_group, gen, privacy, explain, certify):
        main.add_command(command)


_register()


def run(argv: Sequence[str] | None = None) -> int:
    """Entry point: run the CLI and map errors to one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        code = main.main(args=args, prog_name="trustkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("error: interrupted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:  # usage errors from click itself: keep them to one line
        if debug:
            raise
        # the whole command path: 'trustkit detect score --help', not 'trustkit score --help'
        where = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) and exc.ctx.parent else \
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
    return code if isinstance(code, int) else 0  # a command's click Exit (e.g. 1: some cells failed)


def entry() -> None:
    sys.exit(run())


__all__ = ["EXIT_INTERRUPTED", "entry", "main", "run"]
