"""numpy's BLAS held to the calling thread around the small products next to llama.cpp.

OpenBLAS runs a product of any size on all its threads, and those threads then spin for a
while waiting for more work. On a small machine they take the cores llama.cpp's threads
need next: measured on two cores, a short query's encode went from 3.7 ms to 7.5–25 ms
after the heads' products, and ``Index.search`` took 16.6 ms a query instead of 4.3 ms
with its exact-search product on 2,000 vectors. These products are small; one thread
does them about as fast. A leaf module: threadpoolctl finds the BLAS numpy loaded, once,
on first use (a BLAS library loaded later, e.g. scipy's own, is left as it is).
"""

from __future__ import annotations

from typing import Any

__all__ = ["single_threaded_blas"]

_controller: Any = None


def single_threaded_blas() -> Any:
    """Return a context in which numpy's BLAS runs on the calling thread only (~70 µs)."""
    global _controller
    if _controller is None:
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
