"""Evaluation: leakage-free retrieval quality with baselines, and reports people read.

- :mod:`indexer.evaluation.metrics` — pure metric functions over canonical label sets;
- :mod:`indexer.evaluation.runner` — queries (or leave-one-out) through the :class:`Retriever`,
  sweeps over mode and fusion weight, baselines, latency per stage;
- :mod:`indexer.evaluation.report` — ``metrics.json``, ``summary.md`` and ``report.html``.
"""
