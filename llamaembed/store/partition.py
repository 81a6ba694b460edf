"""Which shard a document belongs to: a stable hash partition of its id."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["shard_of"]


def shard_of(ids: Sequence[str], num_shards: int) -> npt.NDArray[np.int64]:
    """Return each id's shard: the first 8 bytes of its BLAKE2b hash modulo ``num_shards``.

    Stable across processes, machines and Python versions (unlike ``hash``).
    """
    if num_shards < 1:
        raise ValueError("num_shards must be at least 1")
    digests = [
        int.from_bytes(hashlib.blake2b(i.encode("utf-8"), digest_size=8).digest(), "little")
        for i in ids
    ]
    return (np.array(digests, dtype=np.uint64) % np.uint64(num_shards)).astype(np.int64)
