"""Read a PyTorch ``state_dict`` saved with ``torch.save`` without torch, safely.

A ``.pt`` file (PyTorch ≥ 1.6) is a zip archive: ``<name>/data.pkl`` is a pickle that
rebuilds the dictionary, and ``<name>/data/<key>`` holds each tensor's raw storage. A
pickle can call any importable function, so the file is untrusted input. The unpickler
here admits only the handful of globals a state dict of plain tensors needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``
and the storage types) and rebuilds tensors as numpy arrays itself; anything else is
refused with :class:`~llamaembed.errors.ConversionError` before it runs.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import ConversionError

__all__ = ["load_state_dict"]

# torch's storage classes, as the pickle names them, and the numpy type of their bytes.
_STORAGE_TYPES: dict[str, np.dtype[Any]] = {
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "DoubleStorage": np.dtype("<f8"),
    "BFloat16Storage": np.dtype("<u2"),  # widened to float32 below
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}
_MAX_PICKLE_BYTES = 16 << 20  # a state dict's pickle is kilobytes; the tensors are elsewhere


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_TYPES[name]


class _Storage:
    def __init__(self, array: npt.NDArray[Any], bfloat16: bool) -> None:
        self.array = array
        self.bfloat16 = bfloat16


def _rebuild_tensor(
    storage: _Storage,
    offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    *_ignored: Any,
) -> npt.NDArray[Any]:
    if not isinstance(storage, _Storage):
        raise ConversionError("malformed .pt file: a tensor without a storage")
    shape = tuple(int(s) for s in size)
    steps = tuple(int(s) for s in stride)
    if len(shape) != len(steps) or any(s < 0 for s in shape + steps) or offset < 0:
        raise ConversionError("malformed .pt file: a tensor with a negative size or stride")
    data = storage.array
    last = offset + sum((n - 1) * s for n, s in zip(shape, steps, strict=True) if n > 0)
    if any(n == 0 for n in shape):
        result = np.empty(shape, dtype=data.dtype)
    elif last >= data.size:
        raise ConversionError(
            f"malformed .pt file: a tensor reaches element {last} of a storage of {data.size}"
        )
    else:
        view = np.lib.stride_tricks.as_strided(
            data[offset:], shape=shape, strides=tuple(s * data.itemsize for s in steps)
        )
        result = np.array(view, copy=True)
    if storage.bfloat16:
        result = (result.astype(np.uint32) << 16).view(np.float32)
    return result


def _rebuild_parameter(data: Any, *_ignored: Any) -> Any:
    return data


_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_TYPES},
}


class _StateDictUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, source: Path) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._source = source
        self._storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _GLOBALS.get((module, name))
        if found is None:
            raise ConversionError(
                f"{self._source} is not a plain state dict: its pickle asks for "
                f"{module}.{name}, which is refused (only tensors and dicts are read)"
            )
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise ConversionError(f"{self._source}: unknown persistent record {pid!r:.80}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _StorageType) or not isinstance(key, str):
            raise ConversionError(f"{self._source}: malformed storage record")
        if key not in self._storages:
            try:
                raw = self._archive.read(f"{self._prefix}/data/{key}")
            except KeyError:
                raise ConversionError(f"{self._source}: storage {key!r} is missing") from None
            if len(raw) < int(numel) * kind.dtype.itemsize:
                raise ConversionError(f"{self._source}: storage {key!r} is truncated")
            array = np.frombuffer(raw, dtype=kind.dtype, count=int(numel))
            self._storages[key] = _Storage(array, kind.name == "BFloat16Storage")
        return self._storages[key]


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """Return the tensors of a ``torch.save``-d state dict as numpy arrays, by name.

    Raises ConversionError for a file that is not a zip-format ``.pt``, a big-endian
    one, or one whose pickle asks for anything but tensors and dictionaries.
    """
    source = Path(path)
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConversionError(
            f"{source} is not a zip-format PyTorch file (torch.save since PyTorch 1.6): {exc}"
        ) from None
    with archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ConversionError(f"{source} has no data.pkl; is it a torch.save file?")
        prefix = pickles[0][: -len("/data.pkl")]
        names = set(archive.namelist())
        if f"{prefix}/byteorder" in names:
            order = archive.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
            if order != "little":
                raise ConversionError(f"{source} was saved {order}-endian; only little is read")
        if archive.getinfo(pickles[0]).file_size > _MAX_PICKLE_BYTES:
            raise ConversionError(f"{source}: its pickle is too large for a state dict")
        data = archive.read(pickles[0])
        try:
            loaded = _StateDictUnpickler(data, archive, prefix, source).load()
        except ConversionError:
            raise
        except Exception as exc:  # a malformed pickle raises many kinds of error
            raise ConversionError(f"{source}: unreadable pickle ({exc})") from None
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, np.ndarray) for k, v in loaded.items()
    ):
        raise ConversionError(f"{source} does not hold a dictionary of tensors")
    return dict(loaded)
