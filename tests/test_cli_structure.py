"""The shape of the command line's code: every click option name declared in one place (trustkit/cli/options.py
for the shared ones), and no module of trustkit/cli/ over 400 lines."""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import trustkit

PACKAGE = Path(trustkit.__file__).resolve().parent
CLI = PACKAGE / "cli"
MAX_LINES = 400


def _is_click_option(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "option" and isinstance(func.value, ast.Name)
            and func.value.id == "click") or (isinstance(func, ast.Name) and func.id == "option")


def option_declarations() -> dict[str, list[str]]:
    """``--name`` -> the places (``file:line``) of the click.option calls that declare it."""
    places: dict[str, list[str]] = defaultdict(list)
    for path in sorted(CLI.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and _is_click_option(node)):
                continue
            for arg in node.args:
                literal = arg.value if isinstance(arg, ast.Starred) else arg
                if isinstance(literal, ast.Constant) and isinstance(literal.value, str):
                    for name in literal.value.split("/"):  # --eval/--no-eval declares both
                        if name.strip().startswith("--"):
                            places[name.strip()].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return places


def test_the_cli_is_a_package_of_command_modules():
    assert CLI.is_dir() and (CLI / "__init__.py").is_file() and (CLI / "options.py").is_file()
    assert not (PACKAGE / "cli.py").exists() and not (PACKAGE / "cli_types.py").exists()
    for old in ("blackbox", "detection", "privacy", "generative"):
        assert not (PACKAGE / old / "cli.py").exists(), f"trustkit/{old}/cli.py moved to trustkit/cli/"


def test_every_click_option_is_declared_once():
    places = option_declarations()
    assert {"--seed", "--model", "--backend", "--ray-address", "--out"} <= set(places)  # the scan sees them
    twice = {name: where for name, where in places.items() if len(where) > 1}
    assert not twice, "options declared in more than one place (share them from trustkit/cli/options.py): " + \
        "; ".join(f"{name} at {', '.join(where)}" for name, where in sorted(twice.items()))


def test_no_cli_module_is_over_400_lines():
    lengths = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in sorted(PACKAGE.rglob("*.py"))}
    others = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p, n in lengths.items()
              if n > MAX_LINES and CLI not in p.parents]
    if others:  # other packages are being split up separately: information only
        print(f"modules over {MAX_LINES} lines outside trustkit/cli/: {', '.join(others)}")
    long = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p, n in lengths.items()
            if n > MAX_LINES and CLI in p.parents]
    assert not long, f"trustkit/cli/ modules over {MAX_LINES} lines: {', '.join(long)}"


HELP_COMMANDS = [[], ["bench"], ["bench", "fakes"], ["bench", "transfer"], ["bench", "substitute"], ["train"],
                 ["list"], ["report"], ["detect"], ["gen"], ["privacy", "audit"], ["explain"],
                 ["explain", "maximize"], ["explain", "style"], ["certify"], ["bench", "calibration"],
                 ["bench", "corruptions"], ["privacy", "membership"], ["detect", "score"]]


def test_help_answers_without_importing_torch():
    """`--help` must be instant: no command module imports torch (or the rest of the stack) to print it."""
    import subprocess
    import sys

    script = ("import sys, contextlib, io\nfrom trustkit.cli import run\n"
              f"for args in {HELP_COMMANDS!r}:\n"
              "    with contextlib.redirect_stdout(io.StringIO()):\n"
              "        assert run([*args, '--help']) == 0, args\n"
              "heavy = sorted(m for m in ('torch', 'numpy', 'pandas', 'matplotlib') if m in sys.modules)\n"
              "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_help_lists_match_the_real_ones():
    from trustkit.cli import detect
    from trustkit.detection.data import DEFAULT_GENERATORS
    from trustkit.detection.perturb import PERTURBATIONS

    assert detect.DEFAULT_GENERATORS == tuple(DEFAULT_GENERATORS)
    assert detect.PERTURBATIONS == tuple(PERTURBATIONS)
