"""The shape of the command line's code: every click option name declared in one place (trustkit/cli/options.py
for the shared ones), and no module of trustkit over 400 lines."""
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


def test_no_module_is_over_400_lines():
    lengths = {path: len(path.read_text(encoding="utf-8").splitlines()) for path in sorted(PACKAGE.rglob("*.py"))}
    long = [f"{p.relative_to(PACKAGE.parent)} ({n} lines)" for p, n in lengths.items() if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines (split them by topic): {', '.join(long)}"
