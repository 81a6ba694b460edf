"""What the CLI's commands share: the error wrapper, the model options, opening a model."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import LlamaEmbedError

if TYPE_CHECKING:
    from ..embedder import Embedder

__all__ = [
    "DEFAULT_DB",
    "dimensions_option",
    "errors",
    "gpu_layers_option",
    "model_options",
    "open_model",
    "selection_options",
]

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DB = ".llamaembed"


def errors(func: F) -> F:
    """Turn our errors (and file errors) into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LlamaEmbedError, FileNotFoundError, PermissionError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper  # type: ignore[return-value]


def open_model(spec: str | None, quant: str | None, **options: Any) -> Embedder:
    """Open a static-model folder, a GGUF path or a catalogue name."""
    from ..hub.spec import resolve_model

    return resolve_model(spec, quant=quant, **options).open()


gpu_layers_option = click.option(
    "--gpu-layers",
    "n_gpu_layers",
    type=click.IntRange(min=-1),
    default=0,
    show_default=True,
    help="Layers to offload to the GPU (-1 = all; needs a GPU build of llama-cpp-python).",
)

dimensions_option = click.option(
    "--dimensions",
    type=click.IntRange(min=1),
    default=None,
    help="Keep the first N dimensions, re-normalised (Matryoshka models).",
)


def model_options(func: F) -> F:
    func = gpu_layers_option(func)
    func = click.option(
        "--quant",
        default=None,
        help="Type of a catalogue model: auto (the CPU's best full-quality type), f16, q8_0, …",
    )(func)
    return click.option(
        "--model",
        "-m",
        default=None,
        help="GGUF path, catalogue name or static-model folder "
        "(default: all-MiniLM-L6-v2, built offline).",
    )(func)


def selection_options(func: F) -> F:
    """Add --no-ignore, --hidden, --include and --exclude, passed on as ``rules``."""
    names = ("no_ignore", "hidden", "include", "exclude")

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..store.selection import FileRules

        no_ignore, hidden, include, exclude = (kwargs.pop(n) for n in names)
        try:
            rules = FileRules(not no_ignore, hidden, tuple(include), tuple(exclude))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        return func(*args, rules=rules, **kwargs)

    for option in reversed(
        [
            click.option(
                "--no-ignore",
                is_flag=True,
                help="Read what .gitignore, .git/info/exclude, .llamaembedignore and the "
                "default skip list (outside git: node_modules, build, ...) leave out.",
            ),
            click.option("--hidden", is_flag=True, help="Read hidden files and folders."),
            click.option(
                "--include",
                multiple=True,
                metavar="GLOB",
                help="Read only files matching GLOB (gitignore syntax; any suffix). Repeatable.",
            ),
            click.option(
                "--exclude",
                multiple=True,
                metavar="GLOB",
                help="Leave out files and folders matching GLOB (gitignore syntax). Repeatable.",
            ),
        ]
    ):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]
