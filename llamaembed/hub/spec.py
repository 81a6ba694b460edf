"""``ModelSpec``: the one way to describe a model and reopen it anywhere.

Every embedder gives its own (``embedder.spec``). The index writes it into its manifest,
the Ray path into each Parquet file, the server and the Ray actors open models from it;
``to_dict`` / ``from_dict`` carry it through JSON (and read the records written before
``ModelSpec`` was stored whole). It is picklable: an open model holds native handles and
cannot travel, its spec can. Opening is deferred: nothing here loads llama.cpp.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelLoadError, SearchIndexError
from ..params import LlamaParams

if TYPE_CHECKING:
    from ..embedder import Embedder
    from .entry import ModelEntry

__all__ = ["ModelSpec", "as_model_spec", "model_record", "open_recorded", "resolve_model"]

# The class that opens each kind of model, by module and name. The embedders import this
# module to describe themselves, so it names them here instead of importing them: the
# package keeps an import graph without cycles (tests/test_architecture.py).
_OPENERS = {
    "gguf": ("llamaembed.engine.llama", "Llama"),
    "static": ("llamaembed.static.model", "StaticModel"),
}


@dataclass(frozen=True)
class ModelSpec:
    """A model to open: the name clients use, other names they may use, how to open it.

    A GGUF model is described by its ``params``; a static model by its folder and prefixes.
    """

    name: str
    params: LlamaParams | None  # None for a static model
    aliases: tuple[str, ...] = ()
    static_folder: str | None = None  # a Model2Vec-format folder instead of a GGUF
    query_prefix: str = ""  # for a static model (a GGUF's are in params)
    document_prefix: str = ""

    def __post_init__(self) -> None:
        if (self.params is None) == (self.static_folder is None):
            raise ValueError("a ModelSpec has either params (GGUF) or static_folder")

    @property
    def kind(self) -> str:
        """Return ``"gguf"`` or ``"static"``."""
        return "static" if self.static_folder is not None else "gguf"

    @property
    def path(self) -> str:
        """Return the model's file (GGUF) or folder (static)."""
        if self.params is not None:
            return self.params.model_path
        assert self.static_folder is not None
        return self.static_folder

    def open(self) -> Embedder:
        """Return the model opened."""
        module, name = _OPENERS[self.kind]
        opener: Any = getattr(importlib.import_module(module), name)
        if self.params is not None:
            model: Embedder = opener.load(self.params)
        else:
            model = opener(
                self.static_folder,
                query_prefix=self.query_prefix,
                document_prefix=self.document_prefix,
                spec_name=self.name,
            )
        return model

    def with_n_threads(self, n_threads: int) -> ModelSpec:
        """Return a copy whose GGUF model runs on ``n_threads`` threads (static: unchanged)."""
        if self.params is None:
            return self
        return replace(self, params=self.params.with_n_threads(n_threads))

    def with_n_gpu_layers(self, n_gpu_layers: int) -> ModelSpec:
        """Return a copy offloading that many layers to the GPU (static: unchanged)."""
        if self.params is None:
            return self
        return replace(self, params=self.params.with_n_gpu_layers(n_gpu_layers))

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as plain JSON values (``from_dict`` reads it back)."""
        record: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "aliases": list(self.aliases),
            "path": self.path,
        }
        if self.params is not None:
            values = dataclasses.asdict(self.params)
            record["params"] = {k: getattr(v, "value", v) for k, v in values.items()}
        else:
            record["static_folder"] = self.static_folder
            record["query_prefix"] = self.query_prefix
            record["document_prefix"] = self.document_prefix
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> ModelSpec:
        """Return the spec a record describes (``to_dict``'s, or an older manifest's).

        Raises ModelLoadError when the record says nothing about how to open its model.
        """
        if record.get("static_folder"):
            folder = str(record["static_folder"])
            return cls(
                name=str(record.get("name") or Path(folder).name),
                params=None,
                aliases=tuple(record.get("aliases", ())),
                static_folder=folder,
                query_prefix=str(record.get("query_prefix", "")),
                document_prefix=str(record.get("document_prefix", "")),
            )
        if isinstance(record.get("params"), dict):
            try:
                params = LlamaParams(**record["params"])
            except (TypeError, ValueError) as exc:
                raise ModelLoadError(f"the recorded model parameters are invalid: {exc}") from exc
            return cls(
                name=str(record.get("name") or Path(params.model_path).stem),
                params=params,
                aliases=tuple(record.get("aliases", ())),
            )
        raise ModelLoadError("the record does not say how to open its model; name the model")


def resolve_model(spec: str | None, *, quant: str | None = None, **options: Any) -> ModelSpec:
    """Return a ModelSpec for a GGUF path, catalogue name or static-model folder.

    None is the default model. A catalogue name of kind static gives its Model2Vec folder
    (fetched or distilled on first use), its name and its prefixes.
    """
    from ..static.folder import is_static_folder
    from .registry import default_model, lookup, resolve_params

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
    is_path = spec is not None and (spec.endswith(".gguf") or os.path.sep in spec)
    if not is_path:
        entry = lookup(spec or default_model()[0])
        if entry.is_static:
            return _static_entry_spec(entry, spec, quant, options)

    params = resolve_params(spec, quant=quant, **options)
    path = Path(params.model_path)
    if not path.is_file():
        raise ModelLoadError(f"{path} does not exist or is not a file")
    name = path.stem if is_path else (spec or default_model()[0])
    aliases = tuple(dict.fromkeys(a for a in (spec, path.name, path.stem) if a and a != name))
    return ModelSpec(name=name, params=params, aliases=aliases)


def _static_entry_spec(
    entry: ModelEntry, spec: str | None, quant: str | None, options: dict[str, Any]
) -> ModelSpec:
    """Return the spec of a static catalogue entry: its folder, name and prefixes.

    A static model has no weight types: ``quant`` may be None or auto, anything else is
    refused; the GGUF options (threads, GPU layers, context) do not apply. Prefixes given
    in ``options`` replace the entry's.
    """
    from .registry import AUTO, resolve_static

    if quant is not None and quant.lower() != AUTO:
        entry.file_for(quant)  # raises: a static model has no weight types
    given = {k: options.get(k) for k in ("query_prefix", "document_prefix")}
    return ModelSpec(
        name=entry.name,
        params=None,
        aliases=(spec,) if spec and spec != entry.name else (),
        static_folder=str(resolve_static(entry.name)),
        query_prefix=entry.query_prefix if given["query_prefix"] is None else given["query_prefix"],
        document_prefix=(
            entry.document_prefix if given["document_prefix"] is None else given["document_prefix"]
        ),
    )


def as_model_spec(model: Any) -> ModelSpec:
    """Return a ModelSpec for any way of naming a model.

    Takes a ModelSpec, ``LlamaParams``, an open embedder (described by its ``spec``, not
    sent itself), a GGUF path, a catalogue name or a static-model folder.
    """
    from ..embedder import Embedder

    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, LlamaParams):
        path = Path(model.model_path)
        if not path.is_file():
            raise ModelLoadError(f"{path} does not exist or is not a file")
        return ModelSpec(name=path.stem, params=model)
    if isinstance(model, Embedder):
        return model.spec
    if isinstance(model, (str, os.PathLike)):
        return resolve_model(os.fspath(model))
    raise TypeError(
        "model must be a GGUF path, a catalogue name, a static-model folder, LlamaParams, "
        f"ModelSpec or an open model (Llama, StaticModel), not {type(model).__name__}"
    )


def model_record(embedder: Embedder | None) -> dict[str, Any]:
    """Return what a manifest or a Parquet file records of its model: fingerprint and spec."""
    if embedder is None:
        return {}
    return {"fingerprint": embedder.fingerprint, **embedder.spec.to_dict()}


def open_recorded(record: dict[str, Any], n_gpu_layers: int = 0) -> Embedder:
    """Reopen the model an index, a collection or an embedded Parquet file records.

    Raises SearchIndexError when the record names no model (written before specs were
    recorded): the caller must give the model itself.
    """
    if "static_folder" not in record and "params" not in record:
        raise SearchIndexError("the index does not record its model; pass --model")
    return ModelSpec.from_dict(record).with_n_gpu_layers(n_gpu_layers).open()
