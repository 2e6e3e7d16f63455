"""The deferred ``sklearn.metrics`` import: sentence-transformers loads without scikit-learn,
which arrives, for real, the first time something needs it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from hearth.engines.import_shims import deferred_sklearn_metrics

    with deferred_sklearn_metrics():
        from sentence_transformers import SentenceTransformer  # noqa: F401
    assert "sklearn" not in sys.modules, "scikit-learn was imported anyway"
    assert "sklearn.metrics" not in sys.modules, "the stand-in outlived the import"

    # sentence-transformers' own helper still works, through the real scikit-learn.
    from sentence_transformers.util.similarity import pairwise_distances
    distances = pairwise_distances(np.array([[0.0, 0.0], [3.0, 4.0]]))
    assert abs(distances[0, 1] - 5.0) < 1e-9, distances
    import sklearn.metrics
    assert hasattr(sklearn.metrics, "f1_score") and sklearn.metrics.__file__

    # Names other than pairwise_distances fetch the real module at once.
    with deferred_sklearn_metrics():
        pass
    del sys.modules["sklearn.metrics"]
    with deferred_sklearn_metrics():
        from sklearn.metrics import f1_score
    assert f1_score([1, 0, 1], [1, 0, 1]) == 1.0
    assert getattr(sys.modules["sklearn.metrics"], "__file__", None), "the stand-in stayed"
    print("ok")
    """
)


def test_sentence_transformers_imports_without_scikit_learn() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
