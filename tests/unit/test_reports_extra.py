"""matplotlib is the optional extra ``visrag[reports]``: without it, the plots of ``analyze`` and
``evaluate`` say which extra to install (one line through the CLI's error path), not a traceback."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from indexer.analysis.rendering import write_plots
from indexer.errors import MissingExtraError
from indexer.evaluation import plots


def test_plots_without_matplotlib_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if absent
    with pytest.raises(MissingExtraError, match=r"pip install 'visrag\[reports\]'"):
        write_plots({}, tmp_path)
    with pytest.raises(MissingExtraError, match="matplotlib"):
        plots.confusion(np.zeros((2, 2)), ["a", "b"], "t")
