"""The label head ("probe") on real vectors, leave-one-out: ``python -m bench.probe MODE``.

Since issue 22 ``families`` (at the end) is the comparison behind the shipped head. The first
three modes are issue 11's questions; they now rank through the shipped first-rank rule
(:func:`indexer.labels.agreement.probe_order`) with their own probabilities as the evidence, so
their figures differ from issue 11's tables in docs/evaluation.md (measured with the old
``cos + w · Σ p`` rule over every rank).

Three questions, one mode each, on the shared DINOv3 crops by default (``--data``). None of them is
what ``visrag evaluate --mode probe`` reports: that runs the shipped rule at its shipped weight;
these are the ablations, the canary and the alternatives that chose that rule.

**experiment** — image search vs ``probe`` (label head) vs baselines, real vectors.

Protocol (the repo's leave-one-out): every item is a query against all the others, items from
the query's own group (source image) excluded; rankings are scored by
:func:`indexer.evaluation.results.aggregate`, so ``recall@1`` and ``label_recall_macro@1`` mean
exactly what ``visrag evaluate`` reports. The label head that scores a query is cross-fitted
(:func:`indexer.labels.head.cross_fit_proba`, one group left out at a time): it never saw the
query's group. Rows:

- ``image``: cosine ranking;
- ``probe``: top-N by cosine re-scored by :func:`indexer.retrieval.probe.probe_scores` (fixed
weight);
- ``probe (nested w)``: the weight chosen per held-out group from a grid, on the other groups'
  queries only (leave-one-group-out selection);
- ``probe (prior only)``: the same formula with every query's probabilities replaced by the label
  priors — what the formula gains without looking at the query (the ablation that shows whether
  the head carries information);
- ``majority`` / ``random``: :mod:`indexer.evaluation.baselines`.

Then label-estimate quality (micro/macro F1 of ``p >= 0.5``, else the most probable label; Brier;
ECE over 10 bins) against the prior, and the permuted-label canary (labels shuffled across rows,
everything refitted: probe must stay within 0.05 recall@1 of the best baseline).

Run: ``python -m bench.probe experiment [--data DIR] [--json out.json]``.

**heads** — issue 11: two other ways to learn from the labels.

Run: ``OMP_NUM_THREADS=1 python -m bench.probe heads``. Both are nested like the
shipped head: what scores a query never saw the query's photo.

- ``prototype head``: SimpleShot-style nearest class mean — vectors centred on the training mean
  and L2-normalised, a label's score is the cosine to the mean of its positives — then Platt
  calibration on 5 inner group folds, as the shipped logistic head. Fewer parameters than a
  logistic regression for labels with 2-13 positives.
- ``learned weight``: the probe weight learned from the catalogue instead of fixed at 1: a
  logistic regression of "candidate shares a label with the query" on (cosine, Σ p) over each
  catalogue row's top-50 candidates from other photos, the probabilities out-of-fold; the weight
  is the ratio of the two coefficients. Learned per held-out photo on the other 19.

Prints recall@1, macro label recall@1 and each one's difference to ``image`` with the paired
group-bootstrap interval that ``visrag evaluate`` reports.

**variants** — issue 11 item 6: fixed, principled probe variants.

Run: ``OMP_NUM_THREADS=1 python -m bench.probe variants``. The head is cross-fitted
by source image (as in ``experiment``); nothing here is tuned on the evaluation: each
variant is one fixed rule, all at the default weight 1 and N = 50 unless named.

- ``probe``: ``cos + Σ_{l ∈ labels(c)} p_l(q)`` (the shipped rule).
- ``probe centred``: ``cos + Σ_{l ∈ labels(c)} (p_l(q) − π_l)``: only the head's evidence above
  the label's catalogue prior π counts (a candidate is not rewarded for carrying the frequent
  label the query would carry by chance).
- ``probe N=20``: the shipped rule over rerank's 20 candidates.
- ``probe utility``: ``cos + Σ_{l ∈ labels(c)} u_l · p_l(q)`` with ``u_l = 1 + N / (L · n_l)``, the
  expected gain of a label hit when the objective is micro plus macro recall@1 (a hit on a label
  carried by ``n_l`` of ``N`` items counts ``1/N`` in micro and ``1/(L · n_l)`` in macro).
- ``probe w=…``: the weight's sensitivity (0.5, 2, 4), looked at after the fact: not a choice.

Each row also gets the paired group-bootstrap interval of its difference to ``image``
(:func:`indexer.evaluation.uncertainty.paired_intervals`, 1000 resamples over the 20 photos),
the interval ``visrag evaluate`` reports.

**families** — issue 22: the head families side by side under the shipped rule.

Run: ``OMP_NUM_THREADS=1 python -m bench.probe families --data DIR`` (both shared sets). Every
head is fitted per held-out photo on the other 19 (never the query's group); its raw estimate
goes through :func:`indexer.labels.agreement.label_evidence` (prior^0.25 correction, unit
profile) and :func:`indexer.labels.agreement.probe_order` (first rank by evidence, the rest by
cosine). Rows:

- ``ridge (shipped, nested)``: :func:`indexer.labels.head.fit_label_head` — cosine-kernel ridge,
  strength and weight chosen on the 19 photos' own 10 group folds;
- ``ridge λ=…, w=16``: fixed strength, the evidence decides the first hit;
- ``logistic, w=16``: the phase-1 class-balanced logistic head (σ of its logits as the estimate);
- ``kNN, w=16``: the cosine-weighted label mean of the query's 10 nearest training rows.

Prints micro/macro label recall at k=1 and 5, each difference to ``image`` with the paired
group-bootstrap interval, and the label estimates' micro/macro F1 (shipped head: p >= 0.5, else
the label with the largest evidence), Brier and ECE beside the prior.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata

from bench.machine import cpu_model
from indexer.evaluation.baselines import majority_ranking
from indexer.evaluation.estimate_quality import estimate_quality
from indexer.evaluation.metrics import LabelSet, label_set
from indexer.evaluation.results import aggregate
from indexer.evaluation.uncertainty import paired_intervals
from indexer.index.catalogue_head import DEFAULT_CANDIDATES, DEFAULT_WEIGHT
from indexer.labels.agreement import label_evidence, probe_order
from indexer.labels.calibration import fit_platt, group_folds, sigmoid
from indexer.labels.head import (
    DEFAULT_REG,
    cross_fit_proba,
    fit_label_head,
    fit_logistic,
    ridge_path,
    unit_rows,
)

DATA = Path("/work/shared/data/seed-crops-dinov3-vitl-medium")
GRID = (0.25, 0.5, 1.0, 2.0, 4.0)
KS = (1, 5)


def load(data: Path) -> tuple[np.ndarray, list[LabelSet], list[str], list[str]]:
    x = np.load(data / "embeddings.npy").astype(np.float64)
    meta = json.loads((data / "metadata.json").read_text())
    sets = [label_set(m["damage_types"]) for m in meta]
    return x, sets, [m["source_image"] for m in meta], [m["crop_id"] for m in meta]


def with_label_signal(x: np.ndarray, sets: list[LabelSet], amount: float, seed: int) -> np.ndarray:
    """Unit rows of ``x + amount · (labels @ R)``, R a random unit direction per label."""
    labels = sorted(set().union(*sets))
    r = np.random.default_rng(seed + 1).normal(size=(len(labels), x.shape[1]))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    out = x + amount * (y @ r)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def pools(groups: list[str]) -> list[np.ndarray]:
    g = np.asarray(groups)
    return [np.flatnonzero(g != g[i]) for i in range(len(groups))]


def score(sets: list[LabelSet], rankings: list[list[int]], idx: list[int] | None = None) -> dict:
    idx = list(range(len(sets))) if idx is None else idx
    s, _ = aggregate([sets[i] for i in idx], [[sets[j] for j in rankings[i]] for i in idx], KS)
    return {k: s[k] for k in ("recall@1", "label_recall_macro@1", "recall@5")}


def image_rankings(
    x: np.ndarray, ids: list[str], pool: list[np.ndarray], n: int
) -> list[list[int]]:
    sims = x @ x.T
    out = []
    for i, rows in enumerate(pool):
        out.append(sorted(rows.tolist(), key=lambda j: (-sims[i, j], ids[j]))[:n])
    return out


def probe_rankings(
    x: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    ids: list[str],
    cands: list[list[int]],
    w: float,
) -> list[list[int]]:
    out = []
    for i, top in enumerate(cands):
        order = probe_order([ids[j] for j in top], x[top] @ x[i], y[top], proba[i], weight=w)
        out.append([top[o] for o in order])
    return out


def nested_probe(
    x: np.ndarray,
    y: np.ndarray,
    proba: np.ndarray,
    sets: list[LabelSet],
    groups: list[str],
    ids: list[str],
    cands: list[list[int]],
) -> tuple[list[list[int]], dict[str, float]]:
    """Per held-out group, the grid weight that maximises micro+macro recall@1 on the others."""
    by_w = {w: probe_rankings(x, y, proba, ids, cands, w) for w in GRID}
    out: list[list[int]] = [[] for _ in sets]
    chosen: dict[str, float] = {}
    for g in sorted(set(groups)):
        held = [i for i, s in enumerate(groups) if s == g]
        rest = [i for i, s in enumerate(groups) if s != g]

        def objective(w: float, rest: list[int] = rest) -> float:
            s = score(sets, by_w[w], rest)
            return s["recall@1"] + s["label_recall_macro@1"]

        best = max(GRID, key=lambda w: (objective(w), -w))
        chosen[g] = best
        for i in held:
            out[i] = by_w[best][i]
    return out, chosen


def random_score(sets: list[LabelSet], pool: list[np.ndarray], seed: int, n: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    draws = [score(sets, [rng.permutation(rows).tolist()[:10] for rows in pool]) for _ in range(n)]
    return {k: float(np.mean([d[k] for d in draws])) for k in draws[0]}


def experiment(x, sets, groups, ids, *, reg, weight, n_cands, seed) -> dict[str, Any]:
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    pool = pools(groups)
    t0 = time.perf_counter()
    proba = cross_fit_proba(x, y, groups, reg=reg, seed=seed)
    fit_s = time.perf_counter() - t0
    prior = np.tile(y.mean(0), (len(sets), 1))
    cands = image_rankings(x, ids, pool, n_cands)
    items = [SimpleNamespace(id=i) for i in ids]
    majority = [[ids.index(n.id) for n in majority_ranking(items, sets, rows, 10)] for rows in pool]
    nested, chosen = nested_probe(x, y, proba, sets, groups, ids, cands)
    rows = {
        "image": score(sets, cands),
        f"probe (w={weight:g}, N={n_cands})": score(
            sets, probe_rankings(x, y, proba, ids, cands, weight)
        ),
        "probe (nested w)": score(sets, nested),
        f"probe (prior only, w={weight:g})": score(
            sets, probe_rankings(x, y, prior, ids, cands, weight)
        ),
        "majority": score(sets, majority),
        "random (20 draws)": random_score(sets, pool, seed),
    }
    return {
        "rows": rows,
        "nested_weights": dict(Counter(chosen.values())),
        "estimates": {
            "head (cross-fitted)": estimate_quality(proba, y, labels),
            "prior": estimate_quality(prior, y, labels),
        },
        "cross_fit_seconds": round(fit_s, 1),
    }


def print_table(title: str, result: dict[str, Any]) -> None:
    print(
        f"\n## {title}\n\n| run | recall@1 | macro label recall@1 | recall@5 |\n|---|---|---|---|"
    )
    for name, s in result["rows"].items():
        print(
            f"| {name} | {s['recall@1']:.3f} | {s['label_recall_macro@1']:.3f} | "
            f"{s['recall@5']:.3f} |"
        )
    print(f"\nnested weight choices (weight: groups): {result['nested_weights']}")
    print("\n| label estimates | micro F1 | macro F1 | Brier | ECE |\n|---|---|---|---|---|")
    for name, e in result["estimates"].items():
        print(
            f"| {name} | {e['micro_f1']:.3f} | {e['macro_f1']:.3f} | {e['brier']:.4f} | "
            f"{e['ece']:.4f} |"
        )


Scorer = Callable[[np.ndarray], np.ndarray]


def prototype(xt: np.ndarray, yt: np.ndarray) -> Scorer:
    m = xt.mean(0)
    a = xt - m
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    c = (yt.T @ a) / np.maximum(yt.sum(0)[:, None], 1)
    c /= np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)

    def scores(q: np.ndarray) -> np.ndarray:
        q = q - m
        return (q / np.linalg.norm(q, axis=1, keepdims=True)) @ c.T

    return scores


def logistic(xt: np.ndarray, yt: np.ndarray) -> Scorer:
    return fit_logistic(xt, yt, 1e-2).scores


def calibrated(fit: Callable[[np.ndarray, np.ndarray], Scorer], x, y, groups) -> tuple:
    """(scorer of calibrated probabilities, out-of-fold probabilities of the training rows)."""
    folds = group_folds(groups, 5, seed=0)
    oof = np.zeros_like(y)
    for f in range(int(folds.max()) + 1):
        train = folds != f
        oof[~train] = fit(x[train], y[train])(x[~train])
    platt = fit_platt(oof, y)
    final = fit(x, y)
    return (
        lambda q: sigmoid(platt[:, 0] * final(q) + platt[:, 1]),
        sigmoid(platt[:, 0] * oof + platt[:, 1]),
    )


def learned_weight(x, y, oof_proba, groups, n: int = 50) -> float:
    g = np.asarray(groups)
    sims = x @ x.T
    feats, target = [], []
    for i in range(len(x)):
        rows = np.flatnonzero(g != g[i])
        for j in rows[np.argsort(-sims[i, rows], kind="stable")[:n]]:
            feats.append((sims[i, j], y[j] @ oof_proba[i], 1.0))
            target.append(float((y[i] * y[j]).sum() > 0))
    f, t = np.array(feats), np.array(target)

    def loss(b: np.ndarray) -> tuple[float, np.ndarray]:
        z = f @ b
        return float((np.logaddexp(0, z) - t * z).mean()), f.T @ (sigmoid(z) - t) / len(t)

    b = minimize(loss, np.zeros(3), jac=True, method="L-BFGS-B").x
    return float(max(b[1], 0.0) / max(b[0], 1e-9))


def auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties averaged)."""
    ranks = rankdata(score)
    pos = truth > 0
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def run_experiment(args: argparse.Namespace) -> None:
    """``experiment``: image vs probe vs baselines, label-estimate quality, the canary."""
    x, sets, groups, ids = load(args.data)
    if args.label_signal:
        x = with_label_signal(x, sets, args.label_signal, args.seed)
    opts = {"reg": args.reg, "weight": args.weight, "n_cands": args.candidates, "seed": args.seed}
    print(f"# {args.data.name}: {len(sets)} vectors, {len(set(groups))} groups; {cpu_model()}")
    real = experiment(x, sets, groups, ids, **opts)
    print_table("leave-one-out, neighbours from the query's group excluded", real)
    perm = np.random.default_rng(args.seed).permutation(len(sets))
    canary = experiment(x, [sets[p] for p in perm], groups, ids, **opts)
    print_table("canary: labels permuted across rows", canary)
    rows = canary["rows"]
    best = max(rows[k]["recall@1"] for k in ("image", "majority", "random (20 draws)"))
    probe = next(v["recall@1"] for k, v in rows.items() if k.startswith("probe (w="))
    print(
        f"\ncanary: probe recall@1 {probe:.3f}, best baseline {best:.3f}, "
        f"gap {probe - best:+.3f} ({'ok' if abs(probe - best) <= 0.05 else 'FAIL'}: |gap| <= 0.05)"
    )
    if args.json:
        args.json.write_text(json.dumps({"real": real, "canary": canary}, indent=2))


def run_heads(args: argparse.Namespace) -> None:
    """``heads``: a prototype head and a learned weight beside the shipped head."""
    x, sets, groups, ids = load(args.data)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    g = np.asarray(groups)
    cands = image_rankings(x, ids, pools(groups), 50)
    rankings: dict[str, list[list[int]]] = {"image": cands}
    names = ("prototype head (w=1)", "learned weight")
    order: dict[str, list[list[int]]] = {name: [[] for _ in sets] for name in names}
    weights = []
    held_proba = {name: np.zeros_like(y) for name in names}
    for photo in sorted(set(groups)):
        held = np.flatnonzero(g == photo)
        rest = g != photo
        train_groups = [s for s in groups if s != photo]
        proto, _ = calibrated(prototype, x[rest], y[rest], train_groups)
        _, oof = calibrated(logistic, x[rest], y[rest], train_groups)
        w = learned_weight(x[rest], y[rest], oof, train_groups)
        weights.append(w)
        head = fit_label_head(x[rest], y[rest], labels, train_groups)
        for name, proba, weight in (
            ("prototype head (w=1)", proto(x[held]), 1.0),
            ("learned weight", head.predict_proba(x[held]), w),
        ):
            held_proba[name][held] = proba
            for row, i in enumerate(held):
                top = cands[i]
                cand_ids = [ids[j] for j in top]
                o = probe_order(cand_ids, x[top] @ x[i], y[top], proba[row], weight=weight)
                order[name][i] = [top[k] for k in o]
    rankings.update(order)
    as_sets = {n: [[sets[j] for j in r] for r in rs] for n, rs in rankings.items()}
    spread = paired_intervals(sets, groups, as_sets, [(n, "image") for n in order], [1])
    interval = {
        (c["run"], c["metric"]): f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        for c in spread["comparisons"]
    }
    print("| run | recall@1 | macro@1 | recall@1 - image (95 %) | macro@1 - image (95 %) |")
    print("|---|---|---|---|---|")
    for name, ranking in rankings.items():
        s = score(sets, ranking)
        print(
            f"| {name} | {s['recall@1']:.3f} | {s['label_recall_macro@1']:.3f} | "
            f"{interval.get((name, 'recall@1'), '')} | "
            f"{interval.get((name, 'label_recall_macro@1'), '')} |"
        )
    print(f"\nlearned weights per held-out photo: {min(weights):.2f} to {max(weights):.2f}")
    print("\nper-label AUC of the held-out probabilities (labels on 2+ crops):")
    for name, head_name in zip(names, ("prototype head", "logistic head (shipped)"), strict=True):
        cols = [j for j in range(len(labels)) if 1 < y[:, j].sum() < len(y)]
        aucs = ", ".join(f"{labels[j]} {auc(y[:, j], held_proba[name][:, j]):.2f}" for j in cols)
        print(f"- {head_name}: {aucs}")


def run_variants(args: argparse.Namespace) -> None:
    """``variants``: fixed probe rules and the weight's sensitivity."""
    x, sets, groups, ids = load(args.data)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    proba = cross_fit_proba(x, y, groups)
    prior = y.mean(0)
    pool = pools(groups)
    cands50 = image_rankings(x, ids, pool, 50)
    cands20 = image_rankings(x, ids, pool, 20)
    rankings = {
        "image": cands50,
        "probe (w=1, N=50)": probe_rankings(x, y, proba, ids, cands50, 1.0),
        "probe centred (p - prior)": probe_rankings(x, y, proba - prior, ids, cands50, 1.0),
        "probe N=20": probe_rankings(x, y, proba, ids, cands20, 1.0),
        "probe utility (micro + macro)": probe_rankings(
            x, y, proba * (1 + len(y) / (len(labels) * y.sum(0))), ids, cands50, 1.0
        ),
        **{
            f"probe w={w:g} (sensitivity)": probe_rankings(x, y, proba, ids, cands50, w)
            for w in (0.5, 2.0, 4.0)
        },
    }
    as_sets = {name: [[sets[j] for j in r] for r in rs] for name, rs in rankings.items()}
    spread = paired_intervals(
        sets, groups, as_sets, [(n, "image") for n in rankings if n != "image"], [1]
    )
    interval = {
        (c["run"], c["metric"]): f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        for c in spread["comparisons"]
    }
    print(
        "| run | recall@1 | macro label recall@1 | recall@5 | recall@1 - image (95 %) | "
        "macro@1 - image (95 %) |\n|---|---|---|---|---|---|"
    )
    for name, ranking in rankings.items():
        r = score(sets, ranking)
        cells = " | ".join(f"{r[k]:.3f}" for k in ("recall@1", "label_recall_macro@1", "recall@5"))
        diffs = " | ".join(
            interval.get((name, m), "") for m in ("recall@1", "label_recall_macro@1")
        )
        print(f"| {name} | {cells} | {diffs} |")


def run_families(args: argparse.Namespace) -> None:
    """``families``: ridge (shipped), fixed ridge, logistic and kNN heads under one rule."""
    x, sets, groups, ids = load(args.data)
    x = unit_rows(x)
    labels = sorted(set().union(*sets))
    y = np.array([[lb in s for lb in labels] for s in sets], np.float64)
    g = np.asarray(groups)
    cands = image_rankings(x, ids, pools(groups), 50)
    names = ["ridge (shipped, nested)", "ridge λ=0.1, w=16", "ridge λ=1, w=16"]
    names += ["logistic, w=16", "kNN (10), w=16"]
    estimate = {n: np.zeros_like(y) for n in names}
    weight = dict.fromkeys(names, 16.0)
    proba = np.zeros_like(y)
    chosen: list[tuple[float, float]] = []
    weight_i = np.zeros(len(y))
    train_prior = np.zeros_like(y)
    start = time.perf_counter()
    for photo in sorted(set(groups)):
        held, rest = g == photo, g != photo
        train_groups = [s for s in groups if s != photo]
        head = fit_label_head(x[rest], y[rest], labels, train_groups)
        chosen.append((head.info["reg"], head.weight))
        train_prior[held] = head.prior  # the fold's own prior: the held-out photo not in it
        estimate[names[0]][held] = head.scores(x[held])
        proba[held] = head.predict_proba(x[held])
        for name, lam in ((names[1], 0.1), (names[2], 1.0)):
            estimate[name][held] = x[held] @ ridge_path(x[rest], y[rest], (lam,))[0]
        estimate[names[3]][held] = sigmoid(
            fit_logistic(x[rest], y[rest], DEFAULT_REG).scores(x[held])
        )
        sims = x[held] @ x[rest].T
        top = np.argsort(-sims, axis=1, kind="stable")[:, :10]
        w = np.take_along_axis(sims, top, 1).clip(0)
        estimate[names[4]][held] = (w[:, :, None] * y[rest][top]).sum(1) / w.sum(1, keepdims=True)
        for i in np.flatnonzero(held):
            weight_i[i] = head.weight
    elapsed = time.perf_counter() - start
    rankings: dict[str, list[list[int]]] = {"image": cands}
    for name in names:
        ev = label_evidence(estimate[name], train_prior)
        rankings[name] = [
            [
                top[o]
                for o in probe_order(
                    [ids[j] for j in top],
                    x[top] @ x[i],
                    y[top],
                    ev[i],
                    weight=weight_i[i] if name == names[0] else weight[name],
                )
            ]
            for i, top in enumerate(cands)
        ]
    as_sets = {n: [[sets[j] for j in r] for r in rs] for n, rs in rankings.items()}
    spread = paired_intervals(sets, groups, as_sets, [(n, "image") for n in names], [1, 5])
    cell = {
        (c["run"], c["metric"]): f"{c['difference']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"
        for c in spread["comparisons"]
    }
    print(f"# {args.data.name}: {len(sets)} vectors, {len(set(groups))} photos; {cpu_model()}")
    metrics = ("recall@1", "label_recall_macro@1", "recall@5", "label_recall_macro@5")
    print(
        "\n| head | micro@1 | macro@1 | micro@5 | macro@5 | "
        + " | ".join(f"{m} − image (95 %)" for m in ("micro@1", "macro@1", "micro@5", "macro@5"))
        + " |\n|---" * 1
        + "|---" * 8
        + "|"
    )
    for name, ranking in rankings.items():
        s, _ = aggregate(sets, [[sets[j] for j in r] for r in ranking], KS)
        values = " | ".join(f"{s[m]:.3f}" for m in metrics)
        diffs = " | ".join(cell.get((name, m), "") for m in metrics)
        print(f"| {name} | {values} | {diffs} |")
    print(f"\nnested choices (reg, weight): {dict(Counter(chosen))}; {elapsed:.1f} s for all heads")
    evidence = label_evidence(estimate[names[0]], train_prior)
    keys = ("micro_f1", "macro_f1", "leading_micro_f1", "leading_macro_f1", "brier", "ece")
    print("\n| estimates | " + " | ".join(keys) + " |\n" + "|---" * (len(keys) + 1) + "|")
    rows = (("ridge (shipped)", proba, evidence), ("prior", train_prior, None))
    for name, p, ev in rows:
        e = estimate_quality(p, y, labels, evidence=ev)
        print(f"| {name} | " + " | ".join(f"{e[k]:.3f}" for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    modes = ap.add_subparsers(dest="mode", required=True)
    experiment = modes.add_parser("experiment", help="image vs probe vs baselines, the canary")
    experiment.add_argument("--reg", type=float, default=DEFAULT_REG)
    experiment.add_argument("--weight", type=float, default=DEFAULT_WEIGHT)
    experiment.add_argument("--candidates", type=int, default=DEFAULT_CANDIDATES)
    experiment.add_argument("--seed", type=int, default=0)
    experiment.add_argument("--json", type=Path)
    experiment.add_argument(
        "--label-signal",
        type=float,
        default=0.0,
        help="stress test: add this much of a random projection of each row's labels to its "
        "vector (then re-normalise) to imitate vectors that already separate the labels",
    )
    experiment.set_defaults(run=run_experiment)
    modes.add_parser("heads", help="prototype head, learned weight").set_defaults(run=run_heads)
    modes.add_parser("variants", help="fixed probe rules").set_defaults(run=run_variants)
    modes.add_parser("families", help="head families, one rule").set_defaults(run=run_families)
    for mode in modes.choices.values():
        mode.add_argument("--data", type=Path, default=DATA, help="embeddings.npy + metadata.json")
    args = ap.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
