"""Evaluation: leakage-free retrieval quality with baselines, and reports people read.

- :mod:`indexer.evaluation.metrics` — pure metric functions over canonical label sets;
- :mod:`indexer.evaluation.prediction` — the kNN-vote prediction (the vote rule of
  :mod:`indexer.retrieval.votes`, the one ``/context`` and ``rerank`` use) and its F1 / confusion;
- :mod:`indexer.evaluation.queries` — held-out (JSONL) or leave-one-out queries, declared text
  sources (``oracle`` labelled as leaking), loading the retriever the manifest describes;
- :mod:`indexer.evaluation.runner` — queries through the :class:`Retriever`, sweeps over mode and
  fusion weight, latency per stage;
- :mod:`indexer.evaluation.baselines` — majority-label and random-retrieval baselines on the same
  pools; :mod:`indexer.evaluation.results` — the result types and the scoring shared by both;
- :mod:`indexer.evaluation.plots` / :mod:`indexer.evaluation.report` — figures, ``metrics.json``
  and ``summary.md``; :mod:`indexer.evaluation.report_html` — the self-contained ``report.html``
  from an autoescaped Jinja2 template;
- :mod:`indexer.evaluation.pipeline` — ``visrag evaluate`` end to end.
"""
