"""A model described by name and by how to open it: picklable, so it travels.

The server opens each model it serves from a :class:`ModelSpec`, and the Ray path sends
one to every actor, which opens the model itself (an open model holds native handles and
cannot be pickled). Opening is deferred: nothing here loads llama.cpp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError
from ..params import LlamaParams

if TYPE_CHECKING:
    from ..engine.llama import Llama
    from ..static.model import StaticModel

__all__ = ["ModelSpec", "as_model_spec", "resolve_model"]


@dataclass(frozen=True)
class ModelSpec:
    """A model to open: the name clients use, other names they may use, how to open it."""

    name: str
    params: LlamaParams | None  # None for a static model
    aliases: tuple[str, ...] = ()
    static_folder: str | None = None  # a Model2Vec-format folder instead of a GGUF
    query_prefix: str = ""  # for a static model (a GGUF's are in params)
    document_prefix: str = ""

    def open(self) -> Llama | StaticModel:
        """Return the model opened."""
        if self.static_folder is not None:
            from ..static.model import StaticModel

            return StaticModel(
                self.static_folder,
                query_prefix=self.query_prefix,
                document_prefix=self.document_prefix,
            )
        from ..engine.llama import Llama

        assert self.params is not None
        return Llama.load(self.params)

    def with_n_threads(self, n_threads: int) -> ModelSpec:
        """Return a copy whose GGUF model runs on ``n_threads`` threads (static: unchanged)."""
        if self.params is None:
            return self
        return replace(self, params=self.params.with_n_threads(n_threads))


def resolve_model(spec: str | None, *, quant: str | None = None, **options: Any) -> ModelSpec:
    """Return a ModelSpec for a GGUF path, catalogue name or static-model folder.

    None is the default model.
    """
    from ..static.model import is_static_folder
    from .registry import default_model, resolve_params

    if spec is not None and is_static_folder(spec):
        folder = Path(spec)
        name = folder.resolve().name
        aliases = tuple(dict.fromkeys(a for a in (spec, folder.name) if a and a != name))
        return ModelSpec(
            name=name,
            params=None,
            aliases=aliases,
            static_folder=spec,
            query_prefix=options.get("query_prefix") or "",
            document_prefix=options.get("document_prefix") or "",
        )

    params = resolve_params(spec, quant=quant, **options)
    path = Path(params.model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist or is not a file")
    is_path = spec is not None and (spec.endswith(".gguf") or os.path.sep in spec)
    name = path.stem if is_path else (spec or default_model()[0])
    aliases = tuple(dict.fromkeys(a for a in (spec, path.name, path.stem) if a and a != name))
    return ModelSpec(name=name, params=params, aliases=aliases)


def as_model_spec(model: Any) -> ModelSpec:
    """Return a ModelSpec for any way of naming a model.

    Takes a ModelSpec, ``LlamaParams``, an open ``Llama`` or ``StaticModel`` (described by
    its parameters or folder, not sent itself), a GGUF path, a catalogue name or a
    static-model folder.
    """
    from ..engine.llama import Llama
    from ..static.model import StaticModel

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, LlamaParams):
        path = Path(model.model_path)
        if not path.is_file():
            raise ModelLoadError(f"{path} does not exist or is not a file")
        return ModelSpec(name=path.stem, params=model)
    if isinstance(model, Llama):
        return ModelSpec(name=model.model_path.stem, params=model.params)
    if isinstance(model, StaticModel):
        return ModelSpec(
            name=model.folder.resolve().name,
            params=None,
            static_folder=str(model.folder.resolve()),
            query_prefix=model.query_prefix,
            document_prefix=model.document_prefix,
        )
    if isinstance(model, (str, os.PathLike)):
        return resolve_model(os.fspath(model))
    raise TypeError(
        "model must be a GGUF path, a catalogue name, a static-model folder, LlamaParams, "
        f"ModelSpec, Llama or StaticModel, not {type(model).__name__}"
    )
