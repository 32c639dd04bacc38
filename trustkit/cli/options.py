"""The options that more than one command takes, each declared once, and the sets they come in.

Every ``click.option`` of a shared name lives here, in one function; a command that words its help differently
(``--seed`` seeds different things in each study) passes its own help text. Values are checked where they are
parsed, in one line (see :data:`SEED`). tests/test_cli_structure.py keeps every option name to one declaration.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import click

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# torch.manual_seed and numpy take seeds up to 2**63 - 1 (larger ones overflow deep inside with a traceback)
SEED = click.IntRange(0, 2**63 - 1)

DATA_ROOT_HELP = "Folder with local data sets (else $TRUSTKIT_DATA, else $TRUSTKIT_HOME/data)."
DOWNLOAD_HELP = "Fetch a missing MNIST/CIFAR-10 with torchvision into the first data root (needs internet)."
DEVICE_HELP = "auto (cuda > mps > cpu), cpu, cuda or mps."
DATASET_HELP = ("digits (embedded), mnist, cifar10, faces (UTKFace, gender), olivetti (40 people), or your own images: "
                "folder:PATH (one sub-folder per class) or csv:FILE (path,label rows).")
TRUST_CODE_HELP = ("Allow --model to be a TorchScript file, a torch.export program (.pt2) or package.module:factory. "
                   "These are programs: loading one "
                   "runs its code, so pass this only for models whose author you trust. trustkit checkpoints "
                   "(.safetensors) and zoo names never need it.")
STEPS_HELP = "Iterations of iterative attacks (PGD default 10)."
ALPHA_HELP = "Step size of iterative attacks (PGD default 2.5·eps/steps)."
RESTARTS_HELP = "Random restarts of PGD and APGD (default 1)."
BACKEND_HELP = ("local: this process (with --jobs N: N processes); processes: a process pool of --jobs workers; "
                "ray: Ray tasks (pip install 'trustkit[ray]')")
RAY_ADDRESS_HELP = ("Join a running Ray cluster: auto or HOST:PORT; default starts a local one. "
                    "Only with --backend ray.")


def split_list(values: Sequence[str]) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: options accept repeats and comma lists alike."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def compose(*decorators: Decorator) -> Decorator:
    """One decorator of several; the options appear in ``--help`` in the order given."""
    def apply(function: Callable[..., Any]) -> Callable[..., Any]:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def _defaulted(default: Any) -> dict[str, Any]:
    return {} if default is None else {"default": default, "show_default": True}


# --- models and data ---------------------------------------------------------------------------------------

def model(help: str, *, default: str | None = None, required: bool = False) -> Decorator:  # noqa: A002
    return click.option("--model", "-m", required=required, help=help, **_defaulted(default))


def trust_code(help: str = TRUST_CODE_HELP) -> Decorator:  # noqa: A002
    return click.option("--trust-code", is_flag=True, help=help)


def dataset(help: str = DATASET_HELP, *, default: str | None = "digits") -> Decorator:  # noqa: A002
    return click.option("--dataset", "-d", help=help, **_defaulted(default))


def data_root(help: str = DATA_ROOT_HELP) -> Decorator:  # noqa: A002
    return click.option("--data-root", type=click.Path(file_okay=False), help=help)


def download(help: str = DOWNLOAD_HELP) -> Decorator:  # noqa: A002
    return click.option("--download", is_flag=True, help=help)


def data_options(*, root_help: str = DATA_ROOT_HELP, download_help: str = DOWNLOAD_HELP) -> Decorator:
    """--data-root and --download."""
    return compose(data_root(root_help), download(download_help))


def model_options(help: str, *, default: str | None = "cnn",  # noqa: A002
                  trust_help: str = TRUST_CODE_HELP) -> Decorator:
    """--model and --trust-code."""
    return compose(model(help, default=default), trust_code(trust_help))


def own_model_data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--weights, --num-classes (for torchvision:/timm: models) and :func:`own_data_options`: the user's own
    model and images."""
    return compose(
        click.option("--weights", type=click.Path(dir_okay=False),
                     help="Weights of a torchvision:NAME or timm:NAME model, as a .safetensors state dict (pickled "
                          ".pt files are refused; the error shows the one-line conversion)."),
        click.option("--num-classes", type=click.IntRange(min=2),
                     help="Classes of a torchvision:/timm: model (default: the data set's)."),
        own_data_options,
    )(function)


def own_data_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--image-size, --workers, --skip-bad: how folder:/csv: data sets are read."""
    return compose(
        click.option("--image-size", type=click.IntRange(8, 4096),
                     help="folder:/csv: data: resize the shorter side to SIZE/0.875 and centre-crop SIZE×SIZE (the "
                          "ImageNet evaluation transform; 224 for most torchvision models). Default: keep the "
                          "images' own size (all must match)."),
        click.option("--workers", type=click.IntRange(0, 64),
                     help="folder:/csv: data: processes decoding images (default up to 4)."),
        click.option("--classes", "class_file", type=click.Path(dir_okay=False),
                     help="folder:/csv: data: a text file of class names, one per line in class order, shown "
                          "instead of the folder names or labels."),
        click.option("--skip-bad", is_flag=True,
                     help="folder:/csv: data: skip files that cannot be decoded (counted in a warning) instead of "
                          "stopping at the first with its name."),
    )(function)


def own_model_data(model: str | None, dataset: str, options: dict[str, Any]) -> tuple[str | None, str]:
    """``(model spec, data set spec)`` with :func:`own_model_data_options` written into them; options that do
    not fit the model or data given are one-line errors."""
    from trustkit.data.folder import is_user_dataset
    from trustkit.errors import InvalidArgumentError
    from trustkit.models.library import is_library_spec, library_spec

    weights, classes = options.pop("weights", None), options.pop("num_classes", None)
    size, workers, skip_bad = options.pop("image_size", None), options.pop("workers", None), options.pop("skip_bad", False)
    class_file = options.pop("class_file", None)
    if weights is not None or classes is not None:
        if not is_library_spec(model):
            raise InvalidArgumentError(f"--weights and --num-classes are for torchvision:NAME or timm:NAME models, "
                                       f"not '{model}'; e.g. --model torchvision:resnet50 --weights r50.safetensors")
        model = library_spec(model, weights=weights, num_classes=classes)
    if size is not None or workers is not None or skip_bad or class_file:
        if not is_user_dataset(dataset):
            raise InvalidArgumentError(f"--image-size, --workers, --skip-bad and --classes are for folder:PATH or "
                                       f"csv:FILE data, not '{dataset}'")
        from trustkit.data.folder import with_options

        dataset = with_options(dataset, size=size, workers=workers, skip_bad=skip_bad, classes=class_file)
    return model, dataset


# --- where and how it runs ---------------------------------------------------------------------------------

def device(help: str = DEVICE_HELP) -> Decorator:  # noqa: A002
    return click.option("--device", default="auto", show_default=True, help=help)


def seed(help: str) -> Decorator:  # noqa: A002
    return click.option("--seed", type=SEED, default=0, show_default=True, help=help)


def out(help: str, *, default: str | None = "reports", file: bool = False) -> Decorator:  # noqa: A002
    """--out/-o: a folder (reports) or, with ``file``, one file (a checkpoint, a PNG)."""
    kind = click.Path(dir_okay=False) if file else click.Path(file_okay=False)
    return click.option("--out", "-o", type=kind, help=help, **_defaulted(default))


def no_cache(help: str = "Recompute every cell instead of reusing cached ones.") -> Decorator:  # noqa: A002
    return click.option("--no-cache", is_flag=True, help=help)


def placement_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """--jobs, --backend, --ray-address: where a study's cells run (trustkit.engine)."""
    return compose(
        click.option("--jobs", "-j", type=int, default=1, show_default=True,
                     help="Evaluate cells in this many processes (each cell's result equals a serial run's)."),
        click.option("--backend", type=click.Choice(["local", "processes", "ray"]), default="local",
                     show_default=True, help=BACKEND_HELP),
        click.option("--ray-address", help=RAY_ADDRESS_HELP),
    )(function)


def run_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`placement_options` and --no-cache: where and how a study's cells run (trustkit.engine)."""
    return compose(placement_options, no_cache())(function)


def engine_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`run_options` and --max-cells (bench and suites, whose grids can expand to many cells)."""
    return compose(
        run_options,
        click.option("--max-cells", type=click.IntRange(min=1), default=10_000, show_default=True,
                     help="Refuse a run that expands to more cells than this, before anything runs."),
    )(function)


def check_backend(backend: str, ray_address: str | None) -> None:
    """--ray-address means a Ray cluster: refuse it with any other backend, in one line."""
    if ray_address is not None and backend != "ray":
        from trustkit.errors import InvalidArgumentError

        raise InvalidArgumentError(f"--ray-address joins a Ray cluster, but --backend is {backend}; "
                                   "add --backend ray or drop --ray-address")


# --- samples and training ----------------------------------------------------------------------------------

def n(help: str, *, default: int | None = None, short: bool = True) -> Decorator:  # noqa: A002
    return click.option("--n", *(["-n"] if short else []), "n", type=int, help=help, **_defaulted(default))


def batch_size(help: str = "Images per attack batch.", *, default: int | None = 256) -> Decorator:  # noqa: A002
    return click.option("--batch-size", type=int, help=help, **_defaulted(default))


def epochs(help: str, *, default: int | None = None) -> Decorator:  # noqa: A002
    return click.option("--epochs", type=int, help=help, **_defaulted(default))


def lr(help: str, *, default: float | None = None) -> Decorator:  # noqa: A002
    return click.option("--lr", type=float, help=help, **_defaulted(default))


def beta(help: str) -> Decorator:  # noqa: A002
    return click.option("--beta", type=float, help=help)


# --- attacks -----------------------------------------------------------------------------------------------

def attack(dest: str, help: str, *, several: bool = True, default: str | None = None) -> Decorator:  # noqa: A002
    """--attack/-a, repeatable (or with ``several`` False one name); ``dest`` is the function argument it fills."""
    return click.option("--attack", "-a", dest, multiple=several, help=help,
                        **({} if several else _defaulted(default)))


def queries(dest: str, help: str, *, default: int | None = None) -> Decorator:  # noqa: A002
    """--queries: a query budget (black-box attacks) or queries per image (membership views); ``dest`` names it."""
    return click.option("--queries", dest, type=int, help=help, **_defaulted(default))


def shadow_models(help: str, *, default: int) -> Decorator:  # noqa: A002
    """--shadow-models/-k: how many shadow models a membership attack trains."""
    return click.option("--shadow-models", "-k", type=int, help=help, **_defaulted(default))


def eps(help: str, *, several: bool = True) -> Decorator:  # noqa: A002
    """--eps: repeatable with -e (budget grids), or one value (a training budget)."""
    return click.option("--eps", *(["-e"] if several else []), multiple=several, help=help)


def norm() -> Decorator:
    return click.option("--norm", type=click.Choice(["linf", "l2"]), default="linf", show_default=True,
                        help="Threat model norm.")


def steps(help: str = STEPS_HELP, *, default: int | None = None) -> Decorator:  # noqa: A002
    return click.option("--steps", type=int, help=help, **_defaulted(default))


def alpha(help: str = ALPHA_HELP, *, dest: str = "alpha", several: bool = False) -> Decorator:  # noqa: A002
    """--alpha: a step size (float), or with ``several`` repeatable text (latent multiples)."""
    return click.option("--alpha", dest, type=None if several else float, multiple=several, help=help)


def restarts(help: str = RESTARTS_HELP) -> Decorator:  # noqa: A002
    return click.option("--restarts", type=int, help=help)


def attack_steps(help: str, *, default: int | None = None) -> Decorator:  # noqa: A002
    return click.option("--attack-steps", type=int, help=help, **_defaulted(default))


def param(help: str, *, metavar: str = "KEY=VALUE") -> Decorator:  # noqa: A002
    """--param/-p, repeatable: options passed through to an attack or method (values read as YAML)."""
    return click.option("--param", "-p", "params", multiple=True, metavar=metavar, help=help)


def compile_model(help_text: str) -> Decorator:
    """--compile: torch.compile the model (train: always; bench: where measured faster)."""
    return click.option("--compile", "compile_model", is_flag=True, help=help_text)


def precision() -> Decorator:
    """--precision: the number type of attack iterations' gradients (trustkit.attacks.precision)."""
    return click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
                        help="Number type of the attack iterations' forward and backward passes (PGD, BIM, MI-FGSM, "
                             "FGSM, APGD and strong's APGD members). bf16 is 1.6-2.1x faster on CPUs with AVX512-bf16 "
                             "and on recent GPUs; every point that seems to fool the model is re-checked in fp32, "
                             "and robust accuracy is always judged in fp32.")


def attack_options(param_help: str) -> Decorator:
    """--steps, --alpha, --restarts and --param/-p KEY=VALUE (passed through to the attacks)."""
    return compose(steps(), alpha(), restarts(), param(param_help))


def tv_weight(help: str, *, default: float) -> Decorator:  # noqa: A002
    """--tv-weight: the weight of a total-variation prior (inversion, style transfer)."""
    return click.option("--tv-weight", type=float, default=default, show_default=True, help=help)


def sample_options(n_help: str) -> Decorator:
    """--n/-n (test images) and --batch-size."""
    return compose(n(n_help), batch_size())


__all__ = ["CONTEXT", "SEED", "attack", "attack_options", "check_backend", "compose", "data_options", "dataset",
           "device", "engine_options", "eps", "model_options", "norm", "out", "own_model_data",
           "own_data_options", "own_model_data_options", "param", "placement_options", "precision", "sample_options", "seed", "split_list",
           "tv_weight"]


def exit_on_failed_cells(run_info: dict) -> None:
    """Exit with status 1 (after the report was written) when some of the study's cells failed: each is listed
    in the report and in run.json's ``failures``, with its one-line error."""
    failures = run_info.get("failures") or []
    if failures:
        for failure in failures:
            click.echo(f"failed: {failure['cell']}: {failure['error']}", err=True)
        click.echo(f"{len(failures)} of {run_info['cells']['total']} cells failed; the others are in the report",
                   err=True)
        raise click.exceptions.Exit(1)
