"""Keep heavy, unused imports of third-party packages off the start-up path.

sentence-transformers imports ``sklearn.metrics`` when it is imported, for ``pairwise_distances``,
which only its similarity helpers call. Importing scikit-learn (and the SciPy it pulls in) costs
about 0.7 s of CPU, a seventh of our start-up budget, for a function we never call. While
sentence-transformers is imported we offer a stand-in ``sklearn.metrics``: its
``pairwise_distances`` imports the real one on first call, and any other name imports the real
module at once, so a newer sentence-transformers that needs more still gets it.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

_lock = threading.Lock()
_MODULE = "sklearn.metrics"


def _real_metrics() -> types.ModuleType:
    with _lock:
        module = sys.modules.get(_MODULE)
        if isinstance(module, _DeferredMetrics):
            del sys.modules[_MODULE]
        return importlib.import_module(_MODULE)


def pairwise_distances(*args: Any, **kwargs: Any) -> Any:
    return _real_metrics().pairwise_distances(*args, **kwargs)


class _DeferredMetrics(types.ModuleType):
    pairwise_distances = staticmethod(pairwise_distances)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # probes such as hasattr(m, "__file__") over sys.modules
            raise AttributeError(name)
        return getattr(_real_metrics(), name)


@contextlib.contextmanager
def deferred_sklearn_metrics() -> Iterator[None]:
    """Within the block, ``from sklearn.metrics import pairwise_distances`` costs nothing."""
    with _lock:
        if _MODULE in sys.modules:  # already imported for real: nothing to save
            stub = None
        else:
            stub = _DeferredMetrics(_MODULE, __doc__)
            sys.modules[_MODULE] = stub
    try:
        yield
    finally:
        with _lock:
            if stub is not None and sys.modules.get(_MODULE) is stub:
                del sys.modules[_MODULE]
