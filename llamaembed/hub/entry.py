"""One catalogue entry (a ``[models."name"]`` table of models.toml), parsed and checked.

Two families of kinds: ``embedding`` and ``rerank`` entries name GGUF files in a
repository; a ``static`` entry is a Model2Vec folder, a Hugging Face repository's snapshot
or distilled here from another catalogue model (``source = "distill:NAME"``). Each family
has its own keys and checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryError
from ..params import Pooling
from .heads import HEAD_KEYS

__all__ = ["KINDS", "STATIC_KEYS", "ModelEntry", "parse_entry"]

KINDS = ("embedding", "rerank", "static")
_REQUIRED = ("kind", "repo", "files", "dimension", "pooling")
# What a static entry may say: it has no files, pooling, context or heads of its own.
STATIC_KEYS = frozenset(
    {
        "kind",
        "repo",
        "source",
        "dimension",
        "query_prefix",
        "document_prefix",
        "license",
        "revision",
        "verified",
    }
)
_PACKAGE, _DISTILL = "package:", "distill:"


@dataclass(frozen=True)
class ModelEntry:
    """One catalogue model: a GGUF one (embedding, rerank) or a static one."""

    name: str
    kind: str
    repo: str  # "" for a static model distilled here
    files: dict[str, str]  # empty for a static model
    dimension: int
    pooling: Pooling | None  # None for a static model (a mean of token rows)
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
    def is_static(self) -> bool:
        """Return True for a static (Model2Vec) model, False for a GGUF one."""
        return self.kind == "static"

    @property
    def package(self) -> str | None:
        """Return the import name of the PyPI package the model is built from, if any."""
        if self.source and self.source.startswith(_PACKAGE):
            return self.source.removeprefix(_PACKAGE)
        return None

    @property
    def distilled_from(self) -> str | None:
        """Return the catalogue model a static entry is distilled from, if it is."""
        if self.source and self.source.startswith(_DISTILL):
            return self.source.removeprefix(_DISTILL)
        return None

    def file_for(self, quant: str) -> str:
        """Return the file name of a quantisation, or raise listing the available ones."""
        if self.is_static:
            raise RegistryError(
                f"{self.name} is a static model: it has no weight types, so {quant!r} does "
                "not apply; leave --quant out (or give auto)"
            )
        key = quant.lower()
        if key not in self.files:
            raise RegistryError(
                f"{self.name} has no {quant!r} file; available: {', '.join(self.files)}"
            )
        return self.files[key]


def parse_entry(name: str, raw: Any, origin: str) -> ModelEntry:
    """Return a checked catalogue entry from its TOML table, or raise RegistryError."""
    if not isinstance(raw, dict):
        raise RegistryError(f"{origin}: models.{name} must be a table")
    if raw.get("kind") == "static":
        return _parse_static(name, raw, f"{origin}: models.{name}")
    return _parse_gguf(name, raw, origin)


def _parse_gguf(name: str, raw: dict[str, Any], origin: str) -> ModelEntry:
    """Return an embedding or rerank entry: GGUF files, pooling, context, prefixes."""
    where = f"{origin}: models.{name}"
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


def _parse_static(name: str, raw: dict[str, Any], where: str) -> ModelEntry:
    """Return a static entry: a Model2Vec repository or ``source = "distill:NAME"``."""
    unknown = set(raw) - STATIC_KEYS
    if unknown:
        raise RegistryError(
            f"{where} is a static model (a Model2Vec folder: no GGUF files, pooling or "
            f"context); it takes {sorted(STATIC_KEYS)}, not {sorted(unknown)}"
        )
    repo, source = raw.get("repo"), raw.get("source")
    if repo is not None and not (isinstance(repo, str) and repo.count("/") == 1 and repo[0] != "/"):
        raise RegistryError(f"{where}.repo must name a Hugging Face repository, owner/name")
    if source is not None and not (
        isinstance(source, str) and source.startswith(_DISTILL) and source[len(_DISTILL) :]
    ):
        raise RegistryError(f'{where}.source must be "distill:NAME" (a catalogue model)')
    if (repo is None) == (source is None):
        raise RegistryError(
            f"{where} needs a repo (a Hugging Face Model2Vec repository) or a source "
            '("distill:NAME" to distil one here), one of the two'
        )
    dimension = raw.get("dimension")
    if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1:
        raise RegistryError(f"{where}.dimension must be a positive whole number")
    for key in ("query_prefix", "document_prefix", "license", "revision"):
        if key in raw and not isinstance(raw[key], str):
            raise RegistryError(f"{where}.{key} must be a string")
    if not isinstance(raw.get("verified", False), bool):
        raise RegistryError(f"{where}.verified must be true or false")
    return ModelEntry(
        name=name,
        kind="static",
        repo=repo or "",
        files={},
        dimension=dimension,
        pooling=None,
        query_prefix=raw.get("query_prefix", ""),
        document_prefix=raw.get("document_prefix", ""),
        license=raw.get("license", ""),
        revision=raw.get("revision"),
        verified=raw.get("verified", False),
        source=source,
    )


def _matryoshka(raw: Any, width: int, where: str) -> tuple[int, ...]:
    """Return the Matryoshka widths of an entry, each in 1..width."""
    if not isinstance(raw, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= width for d in raw
    ):
        raise RegistryError(f"{where}.dimensions must list widths between 1 and {width}")
    return tuple(sorted(set(raw)))
