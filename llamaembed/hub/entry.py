"""One catalogue entry (a ``[models."name"]`` table of models.toml), parsed and checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryError
from ..params import Pooling
from .heads import HEAD_KEYS

__all__ = ["KINDS", "ModelEntry", "parse_entry"]

KINDS = ("embedding", "rerank")
_REQUIRED = ("kind", "repo", "files", "dimension", "pooling")


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue model."""

    name: str
    kind: str
    repo: str
    files: dict[str, str]
    dimension: int
    pooling: Pooling
    context_length: int = 512
    query_prefix: str = ""
    document_prefix: str = ""
    license: str = ""
    revision: str | None = None
    sha256: dict[str, str] = field(default_factory=dict)
    verified: bool = False
    source: str | None = None
    heads: dict[str, str] = field(default_factory=dict)  # bge-m3's heads: see hub.heads
    dimensions: tuple[int, ...] = ()  # Matryoshka widths the model was trained for
    append_eos: bool | str | None = None  # the end-of-text token last pooling reads

    @property
    def package(self) -> str | None:
        """Return the import name of the PyPI package the model is built from, if any."""
        return self.source.removeprefix("package:") if self.source else None

    def file_for(self, quant: str) -> str:
        """Return the file name of a quantisation, or raise listing the available ones."""
        key = quant.lower()
        if key not in self.files:
            raise RegistryError(
                f"{self.name} has no {quant!r} file; available: {', '.join(self.files)}"
            )
        return self.files[key]


def parse_entry(name: str, raw: Any, origin: str) -> ModelEntry:
    """Return a checked catalogue entry from its TOML table, or raise RegistryError."""
    where = f"{origin}: models.{name}"
    if not isinstance(raw, dict):
        raise RegistryError(f"{origin}: models.{name} must be a table")
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise RegistryError(f"{origin}: models.{name} lacks {', '.join(missing)}")
    if raw["kind"] not in KINDS:
        raise RegistryError(f"{origin}: models.{name}.kind must be one of {KINDS}")
    files = raw["files"]
    if not isinstance(files, dict) or not files:
        raise RegistryError(f"{origin}: models.{name}.files must map quantisations to files")
    for quant, file in files.items():
        if not isinstance(file, str) or not file.endswith(".gguf"):
            raise RegistryError(f"{origin}: models.{name}.files.{quant} must be a .gguf name")
    try:
        pooling = Pooling.parse(raw["pooling"])
    except ValueError as exc:
        raise RegistryError(f"{origin}: models.{name}.pooling: {exc}") from exc
    if (raw["kind"] == "rerank") != (pooling is Pooling.RANK):
        raise RegistryError(f"{origin}: models.{name}: rerank models and only they use rank")
    known = {f.name for f in ModelEntry.__dataclass_fields__.values()} - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise RegistryError(f"{origin}: models.{name} has unknown keys {sorted(unknown)}")
    values = {k: v for k, v in raw.items() if k in known}
    values["files"] = {k.lower(): v for k, v in files.items()}
    values["sha256"] = {k.lower(): str(v).lower() for k, v in raw.get("sha256", {}).items()}
    if not isinstance(raw.get("heads", {}), dict) or not set(raw.get("heads", {})) <= HEAD_KEYS:
        raise RegistryError(f"{origin}: models.{name}.heads takes {sorted(HEAD_KEYS)}")
    values["pooling"] = pooling
    values["dimension"] = int(raw["dimension"])
    values["dimensions"] = _matryoshka(raw.get("dimensions", []), values["dimension"], where)
    append_eos = raw.get("append_eos")
    if append_eos is not None and not isinstance(append_eos, (bool, str)):
        raise RegistryError(f"{where}.append_eos must be true, false or a token")
    return ModelEntry(name=name, **values)


def _matryoshka(raw: Any, width: int, where: str) -> tuple[int, ...]:
    """Return the Matryoshka widths of an entry, each in 1..width."""
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= width for d in raw
    ):
        raise RegistryError(f"{where}.dimensions must list widths between 1 and {width}")
    return tuple(sorted(set(raw)))
