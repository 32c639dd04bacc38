"""Benchmark suites: YAML files naming models × data sets × attacks × threat models, validated strictly.

    name: digits-quick
    description: every zoo model on digits, FGSM/PGD/strong, linf
    seed: 0
    n: 200
    models: [softmax, mlp, cnn]
    datasets: [digits]
    threat_models:
      - {norm: linf, eps: [0.05, 0.1, 0.2]}
    attacks:
      - fgsm
      - {name: pgd, params: {steps: 20}}
    studies:                      # optional: other trust questions on the same models, in the same report
      certify: {sigmas: [0.25], n: 1000, n_images: 100}
      corruptions: {baseline: softmax}
      calibration: {ood: [noise]}

A study under ``studies:`` takes the settings of its command (``trustkit certify``, ``bench corruptions``,
``bench calibration``: the field names of its config class); its models, data set and seed default to the
suite's. Only registry names are allowed (no import paths): a suite is data, never code.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from trustkit.attacks import parse_eps
from trustkit.attacks.art_bridge import ART_PREFIX
from trustkit.attacks.base import NORMS, ThreatModel
from trustkit.attacks.spec import ENGINES, AttackSpec
from trustkit.data import DATASETS
from trustkit.errors import TrustkitError, UnknownNameError
from trustkit.models import MODELS
from trustkit.studies.bench_cells import Cell, defense_cells
from trustkit.yamlspec import Located, SpecError, check_keys, load_yaml

SUITE_KEYS = {"name": True, "description": False, "seed": False, "n": False, "batch_size": False, "models": True,
              "datasets": True, "threat_models": True, "attacks": True, "defenses": False, "studies": False}
ATTACK_KEYS = {"name": True, "engine": False, "params": False}
THREAT_KEYS = {"norm": True, "eps": True}


@dataclass
class Suite:
    """A validated suite: its cells are models × data sets × defenses × attacks × (norm, eps)."""

    name: str
    source: str
    models: list[str]
    datasets: list[str]
    attacks: list[AttackSpec]
    threat_models: list[tuple[str, list[float]]]
    description: str = ""
    seed: int = 0
    n: int | None = None
    batch_size: int = 256
    defenses: list[str] = field(default_factory=lambda: ["none"])
    studies: list[tuple[str, dict[str, Any]]] = field(default_factory=list)  # (kind, settings) beside the attacks

    def cell_count(self) -> int:
        """How many cells :meth:`cells` would build (computed without building them)."""
        return (len(self.datasets) * len(self.models) * len(defense_cells(self.defenses)) * len(self.attacks)
                * sum(len(grid) for _, grid in self.threat_models))

    def cells(self) -> list[Cell]:
        return [Cell(model, dataset, attack, norm, eps, self.n, self.seed, self.batch_size, defense, self.name,
                     evaluation)
                for dataset in self.datasets for model in self.models
                for defense, evaluation in defense_cells(self.defenses)
                for norm, grid in self.threat_models for attack in self.attacks for eps in grid]


def suite_dirs() -> list[Path]:
    """Where suite names are looked up: ./configs/suites, then the suites shipped with trustkit."""
    found = [Path.cwd() / "configs" / "suites"]
    try:
        found.append(Path(str(resources.files("trustkit.suites"))))
    except (ModuleNotFoundError, TypeError):
        pass
    return [d for i, d in enumerate(found) if d.is_dir() and d.resolve() not in {f.resolve() for f in found[:i]}]


def available_suites() -> dict[str, Path]:
    """Suite name -> file, first match in :func:`suite_dirs` order."""
    suites: dict[str, Path] = {}
    for folder in suite_dirs():
        for path in sorted(folder.glob("*.yaml")):
            suites.setdefault(path.stem, path)
    return suites


def find_suite(name_or_path: str) -> Path:
    """A suite file from a path or a suite name; UnknownNameError lists the names known."""
    candidate = Path(name_or_path).expanduser()
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if not candidate.is_file():
            raise SpecError(f"suite file {candidate} not found; check the path or use a suite name "
                            f"({', '.join(available_suites()) or 'none found'})")
        return candidate
    suites = available_suites()
    if name_or_path in suites:
        return suites[name_or_path]
    import difflib

    close = difflib.get_close_matches(name_or_path, list(suites), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise UnknownNameError(f"unknown suite '{name_or_path}'{hint}; choose one of: {', '.join(suites)} "
                           "(or give a path to a .yaml file)")


def _names(node: Located, source: str, what: str) -> list[Located]:
    items = node.value if isinstance(node.value, list) else [node]
    if not items:
        raise SpecError(f"{source}, line {node.line}: '{what}' is empty; name at least one")
    return items


def _registry_name(item: Located, registry: Any, source: str, what: str) -> str:
    if not isinstance(item.value, str):
        raise SpecError(f"{source}, line {item.line}: {what} must be a name, got {item.plain()!r}")
    try:
        return registry.canonical(item.value)
    except UnknownNameError as exc:
        raise SpecError(f"{source}, line {item.line}: {exc}") from None


def _integer(node: Located | None, source: str, what: str, minimum: int, default: int | None) -> int | None:
    if node is None:
        return default
    if not isinstance(node.value, int) or isinstance(node.value, bool) or node.value < minimum:
        raise SpecError(f"{source}, line {node.line}: '{what}' must be an integer >= {minimum}, got {node.plain()!r}")
    return node.value


def _attack(item: Located, source: str) -> AttackSpec:
    if isinstance(item.value, str):
        item = Located({"name": item}, item.line, {"name": item.line})
    check_keys(item, ATTACK_KEYS, source, "an attack")
    name_node = item.value["name"]
    name = name_node.value
    engine = item.value.get("engine", Located("trustkit", item.line)).value
    params_node = item.value.get("params", Located({}, item.line))
    if not isinstance(params_node.value, dict):
        raise SpecError(f"{source}, line {params_node.line}: attack params must be a mapping, e.g. {{steps: 20}}")
    if engine not in ENGINES:
        raise SpecError(f"{source}, line {item.line}: unknown engine '{engine}'; use one of: {', '.join(ENGINES)}")
    if not isinstance(name, str) or ("." in name and not name.startswith(ART_PREFIX)):
        raise SpecError(f"{source}, line {name_node.line}: attack must be a registry name or art:ClassName, "
                        f"got {name_node.plain()!r}")
    try:
        spec = AttackSpec.parse(name, engine, params_node.plain())
        unknown = [k for k in spec.params if not spec.accepts(k)]
        if unknown:
            raise SpecError(f"{source}, line {params_node.line}: attack '{spec.name}' takes no parameter "
                            f"{', '.join(unknown)}")
        return spec
    except SpecError:
        raise
    except TrustkitError as exc:
        raise SpecError(f"{source}, line {name_node.line}: {exc}") from None


def _threat(item: Located, source: str) -> tuple[str, list[float]]:
    check_keys(item, THREAT_KEYS, source, "a threat model")
    norm = item.value["norm"].value
    if norm not in NORMS:
        raise SpecError(f"{source}, line {item.value['norm'].line}: unknown norm {norm!r}; use one of: {', '.join(NORMS)}")
    grid = []
    for eps_node in _names(item.value["eps"], source, "eps"):
        try:
            eps = parse_eps(eps_node.value)
            ThreatModel(norm, eps)
        except TrustkitError as exc:
            raise SpecError(f"{source}, line {eps_node.line}: {exc}") from None
        grid.append(eps)
    return norm, sorted(set(grid))


# settings a suite cannot give a study: they say where and how this run happens, or are the suite's own
_PART_RESERVED = ("out", "device", "trust_code", "use_cache", "jobs", "backend", "ray_address", "data_root",
                  "download", "dataset")


def _studies(node: Located, source: str) -> list[tuple[str, dict[str, Any]]]:
    """``studies: {certify: {...}, corruptions: {...}}`` as (kind, settings), checked against each config class."""
    from dataclasses import MISSING, fields

    from trustkit.studies.combined import PART_STUDIES, part_config_class

    if not isinstance(node.value, dict) or not node.value:
        raise SpecError(f"{source}, line {node.line}: 'studies' must map study names to their settings, e.g. "
                        f"{{certify: {{sigmas: [0.25]}}}}; known: {', '.join(PART_STUDIES)}")
    found = []
    for kind, settings in node.value.items():
        line = (node.key_lines or {}).get(kind, node.line)
        if kind not in PART_STUDIES:
            import difflib

            close = difflib.get_close_matches(str(kind), list(PART_STUDIES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise SpecError(f"{source}, line {line}: unknown study '{kind}'{hint}; a suite may name: "
                            f"{', '.join(PART_STUDIES)}")
        if settings.value is None:
            settings = Located({}, line, {})
        if not isinstance(settings.value, dict):
            raise SpecError(f"{source}, line {line}: the settings of '{kind}' must be a mapping, e.g. {{seed: 1}}")
        known = {f.name: f for f in fields(part_config_class(kind))}
        values: dict[str, Any] = {}
        for key, value in settings.value.items():
            key_line = (settings.key_lines or {}).get(key, line)
            if key in _PART_RESERVED:
                raise SpecError(f"{source}, line {key_line}: '{key}' of {kind} comes from the command line or the "
                                "suite's datasets, not from the suite's studies")
            if key not in known:
                raise SpecError(f"{source}, line {key_line}: {kind} has no setting '{key}'; it takes: "
                                f"{', '.join(k for k in known if k not in _PART_RESERVED)}")
            plain = value.plain()
            default = known[key].default
            values[key] = tuple(plain) if isinstance(plain, list) and (
                isinstance(default, tuple) or default is MISSING) else plain
        found.append((kind, values))
    return found


def parse_suite(text: str, source: str) -> Suite:
    """Validate suite YAML ``text``; every problem is a one-line SpecError naming the file and line."""
    root = load_yaml(text, source)
    for key in ("trust_code", "trust-code"):  # consent to run code is the user's, given on the command line
        if isinstance(root.value, dict) and key in root.value:
            line = (root.key_lines or {}).get(key, root.line)
            raise SpecError(f"{source}, line {line}: a suite file cannot grant '{key}'; pass --trust-code on the "
                            "command line if you trust the models' code")
    check_keys(root, SUITE_KEYS, source, "the suite")
    value = root.value
    name = value["name"].value
    if not isinstance(name, str) or not name:
        raise SpecError(f"{source}, line {value['name'].line}: 'name' must be a non-empty string")
    models = [_registry_name(i, MODELS, source, "a model") for i in _names(value["models"], source, "models")]
    datasets = [_registry_name(i, DATASETS, source, "a data set") for i in _names(value["datasets"], source, "datasets")]
    attacks = [_attack(i, source) for i in _names(value["attacks"], source, "attacks")]
    threats = [_threat(i, source) for i in _names(value["threat_models"], source, "threat_models")]
    defenses = ["none"]
    if "defenses" in value:
        from trustkit.defenses import make_defense

        defenses = []
        for item in _names(value["defenses"], source, "defenses"):
            try:
                defenses.append("none" if item.value == "none" else make_defense(str(item.value)).describe())
            except TrustkitError as exc:
                raise SpecError(f"{source}, line {item.line}: {exc}") from None
    description = value.get("description", Located("", root.line)).value or ""
    return Suite(name, source, models, datasets, attacks, threats, str(description),
                 seed=_integer(value.get("seed"), source, "seed", 0, 0),
                 n=_integer(value.get("n"), source, "n", 1, None),
                 batch_size=_integer(value.get("batch_size"), source, "batch_size", 1, 256), defenses=defenses,
                 studies=_studies(value["studies"], source) if "studies" in value else [])


def load_suite(name_or_path: str) -> Suite:
    """Find and validate a suite by name (see :func:`suite_dirs`) or path."""
    path = find_suite(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read suite file {path} ({exc})") from None
    return parse_suite(text, str(path))
