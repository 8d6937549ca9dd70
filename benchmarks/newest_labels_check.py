"""Would the newest labels tell when pseudo-labels stop helping? Rules scored offline on real loops.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/newest_labels_check.py record --data digits --batch 10 \\
        --max-labels 400 --seeds 0-9 --out /tmp/nl_d10.json
    .venv/bin/python benchmarks/loop_labels.py --data digits --batch 10 --max-labels 400 --seeds 10 \\
        --configs margin --jobs 2 --out /tmp/nl_d10_margin.json
    .venv/bin/python benchmarks/newest_labels_check.py score /tmp/nl_d10.json --margin /tmp/nl_d10_margin.json \\
        --windows 3,5,8,10 --rules geq,sh1.0,sh0.95,sh0.9,sh0.85

``record`` runs the default loop (``benchmarks/loop_labels.py``'s ``default`` row: the real
``Loop``, its default config, the simulated crowd; ``loop.pseudo_labels.newest_check`` off, so
that each round deploys its pseudo-labeled fit and the product's own rule is one of those
replayed: ``sh0.9``, W=8) and, each round, evaluates both models the round
fits on its labels: the fit on human labels alone (the one the strategy queries with) and the
pseudo-labeled fit (the one the round evaluates and deploys); and it tallies how many of the labels
bought in the next round each of them got right (the newest labels: items neither fit saw). The
picks never depend on which of the two a round deploys (the strategy queries with the human-label
fit), so ``score`` can replay any rule that chooses between them, round by round, from these
records: the curve the loop would have reported with that rule.

Rules (each needs ``W`` tallies, from the last ``W`` rounds, before it may act; until then the
pseudo-labeled fit is deployed, as with the check off): ``geq``: the human-label fit when it got at least as many
of the newest labels right; ``shS``: the same, and only when it also got a share of at least
``S`` of them right (its least sure items no longer puzzle it). ``score`` prints, for the product
(``trained``), the human-label fit alone (``query``), the two fits' averaged probabilities every
round (``avg``, an ensemble; records made before 2026-12-06 lack it and show ``trained``) and
each rule: mean final accuracy minus margin's, the points past 95% where it is below margin, and
the median ratios of labels to 95% / 98% of the full-data accuracy (from the margin file) to
margin's. Measured on 2026-12-05 (docs/benchmarks/log.md, "Pseudo-labels at the top of the
curve: the newest labels decide"): ``sh0.9`` with W=8 became the product's rule
(``loop.pseudo_labels.newest_check``, default 8); ``geq`` was not kept. ``avg`` was measured on
2026-12-06 and not kept (same log, "Sharper cover weights, the two fits averaged, ...").

``record --weights 1,0.5,0.1`` also refits each round's pseudo-labeled set from scratch with the
pseudo-labeled rows weighted each of these (human labels 1); ``score --weighted`` replays
weightings from them: ``wW`` (W every round), ``dA`` (min(1, A / labels)), ``cA`` (min(1, A x
classes / labels)), and ``sh0.9+c2.5`` in ``--rules`` (a rule, its pseudo-labeled fit so
weighted). Measured on 2026-12-07 (docs/benchmarks/log.md, "Pseudo-labels that fade as the
human labels grow"); ``benchmarks/pseudo_weight_variants.py`` runs a weighting in the real loop.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import os

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config


def record(ns: argparse.Namespace) -> None:
    from benchmarks import loop_labels as ll
    from clicloop import Loop, config_from_dict
    from clicloop.orchestrator.training.models import evaluate

    from clicloop.orchestrator.training import semisup

    rounds: list[dict[str, Any]] = []
    fit_query = Loop._fit_query
    sets: list[tuple[Any, Any, int]] = []  # the round's pseudo-labeled training set, and how many rows are human
    with_pseudo = semisup.with_pseudo_labels

    def capture(labeler: Any, X: Any, idx: Any, y: Any, fit_kwargs: Any, model: Any = None, exclude: Any = None,
                remember: bool = True) -> Any:
        X2, y2, kwargs = with_pseudo(labeler, X, idx, y, fit_kwargs, model, exclude, remember)
        if remember and model is not None:
            sets.append((X2, y2, len(y)))
        return X2, y2, kwargs

    semisup.with_pseudo_labels = capture

    def predicted(model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.classes_)[np.asarray(model.predict_proba(X)).argmax(axis=1)].astype(str)

    def both(self: Any, labeled: dict[str, str]) -> Any:
        query, deploy = fit_query(self, labeled)
        if query is None:
            return query, deploy
        entry = {"n": len(labeled), "labeled": dict(labeled), "q_acc": evaluate(query, self.evalset_, "accuracy"),
                 "q_pool": predicted(query, self.pool_.X)}
        rounds.append(entry)

        def deployed() -> Any:
            model = deploy()
            entry["t_acc"] = evaluate(model, self.evalset_, "accuracy")
            entry["t_pool"] = predicted(model, self.pool_.X)
            entry["a_acc"] = averaged_accuracy(query, model, self.evalset_)
            if sets and ns.weights:
                X2, y2, human = sets.pop()
                entry["w_acc"] = {str(w): weighted_accuracy(query, X2, y2, human, w, self.evalset_)
                                  for w in ns.weights}
            sets.clear()
            return model

        return query, deployed

    Loop._fit_query = both
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        meta = ll.prepare(ns.data, folder)
        args = argparse.Namespace(batch=ns.batch, max_labels=ns.max_labels, noise=0.0, set={},
                                  seed_size=20 if meta["classes"] <= 20 else 200)
        for seed in ns.seeds:
            rounds.clear()
            # the check off, so the round's deployed model is always its pseudo-labeled fit: the rules are replayed here
            overrides = ll.merge(ll.CONFIGS["default"], {"loop": {"pseudo_labels": {"newest_check": 0}}})
            cfg = ll.loop_config(overrides, folder, args, seed, f"sqlite:///{folder / f'l{seed}.db'}")
            loop = Loop(config_from_dict(cfg))
            loop.run()
            out[str(seed)] = tallied(rounds, loop.pool_.ids.tolist())
            print(f"seed {seed}: {len(rounds)} rounds", file=sys.stderr, flush=True)
    Path(ns.out).write_text(json.dumps({"data": ns.data, "batch": ns.batch, "max_labels": ns.max_labels,
                                        "classes": meta["classes"], "seeds": out}))


def weighted_accuracy(query: Any, X2: Any, y2: Any, human: int, weight: float, evalset: Any) -> float:
    """Accuracy on ``evalset`` of the round's pseudo-labeled set refitted from scratch (a copy of
    ``query``'s estimator, not warm-started) with each pseudo-labeled row weighted ``weight`` and
    each human label 1."""
    import copy

    from clicloop.orchestrator.training.models import confidence_weights, evaluate

    model = copy.deepcopy(query)
    w = np.ones(len(y2))
    w[human:] = weight
    key = next(iter(confidence_weights({}, [], model)))
    model.fit(X2, y2, **{key: w})
    return evaluate(model, evalset, "accuracy")


def averaged_accuracy(a: Any, b: Any, evalset: Any) -> float:
    """Accuracy on ``evalset`` of the two fits' averaged class probabilities (an ensemble of the
    fit on human labels and the pseudo-labeled fit; a class one of them lacks counts 0 there)."""
    classes = np.union1d(np.asarray(a.classes_).astype(str), np.asarray(b.classes_).astype(str))
    P = np.zeros((evalset.X.shape[0], classes.size))
    for m in (a, b):
        P[:, np.searchsorted(classes, np.asarray(m.classes_).astype(str))] += np.asarray(m.predict_proba(evalset.X))
    return float((classes[P.argmax(axis=1)] == np.asarray(evalset.y).astype(str)).mean())


def tallied(rounds: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Per round: labels, both fits' accuracy, and (but the last) how many of the next round's new
    labels each fit got right (``human``, ``pseudo``) out of ``new``."""
    at = {item: i for i, item in enumerate(ids)}
    rows = []
    for i, e in enumerate(rounds):
        row = {"n": e["n"], "q_acc": e["q_acc"], "t_acc": e.get("t_acc"), "a_acc": e.get("a_acc"),
               "w_acc": e.get("w_acc")}
        if i + 1 < len(rounds):
            after = rounds[i + 1]["labeled"]
            new = [k for k, v in after.items() if e["labeled"].get(k) != v]
            truth = np.array([str(after[k]) for k in new])
            rows_ = np.array([at[k] for k in new], dtype=np.int64)
            row |= {"new": len(new), "human": int((e["q_pool"][rows_] == truth).sum()),
                    "pseudo": int((e["t_pool"][rows_] == truth).sum())}
        rows.append(row)
    return rows


def replay(rows: list[dict[str, Any]], rule: str, window: int, classes: int = 0) -> list[tuple[int, float]]:
    """The curve a loop with ``rule`` would report: each round's deployed fit's accuracy."""
    out = []
    rule, _, weighted = rule.partition("+")  # e.g. sh0.9+d25: the rule, with a weighted pseudo-labeled fit
    for i, r in enumerate(rows):
        if rule == "avg":
            out.append((r["n"], r["a_acc"] if r.get("a_acc") is not None else r["t_acc"]))
            continue
        trained = r["t_acc"] if not weighted else _weighted(r, weighted, classes)
        if rule[0] in "wdc" and rule[1:2].isdigit():  # a recorded weight, or one that decays with the labels
            out.append((r["n"], _weighted(r, rule, classes)))
            continue
        past = rows[max(0, i - window):i]
        human, pseudo, new = (sum(p.get(k, 0) for p in past) for k in ("human", "pseudo", "new"))
        use_human = rule == "query" or (rule not in ("trained", "query") and len(past) >= window and human >= pseudo
                                         and (rule == "geq" or human >= float(rule[2:]) * new))
        out.append((r["n"], r["q_acc"] if use_human else trained))
    return out


def _weighted(r: dict[str, Any], rule: str, classes: int) -> float:
    """The accuracy of the round's pseudo-labeled fit with its pseudo-labels weighted as ``rule``
    says (``wW``; ``dA``: A / labels; ``cA``: A x classes / labels; at most 1), the recorded weight
    nearest it; the product's fit where none was recorded."""
    grid = r.get("w_acc") or {}
    scale = {"w": 0, "d": 1, "c": classes}[rule[0]]
    want = float(rule[1:]) if not scale else min(1.0, float(rule[1:]) * scale / r["n"])
    near = min(grid, key=lambda w: abs(np.log(float(w)) - np.log(want)), default=None)
    return r["t_acc"] if near is None else grid[near]


def score(ns: argparse.Namespace) -> None:
    records = json.loads(Path(ns.records).read_text())
    rec, classes = records["seeds"], records.get("classes") or ns.classes
    ref = json.loads(Path(ns.margin).read_text())
    full, margin = ref["full_accuracy"], ref["curves"]["margin"]
    seeds = [s for s in rec if s in margin]
    print(f"{len(seeds)} paired seeds; full-data accuracy {full:.4f}\n")
    print("| rule | final - margin (mean) | below margin past 95% (points) | labels to 95% / 98%, x margin's (median) |")
    print("|---|---|---|---|")
    rules = [("trained", 0), ("query", 0), ("avg", 0)] + [(r, w) for w in ns.windows for r in ns.rules]
    rules += [(r, 0) for r in ns.weighted]
    for rule, window in rules:
        finals, below, points, r95, r98 = [], 0, 0, [], []
        for s in seeds:
            m = {int(n): a for n, a in margin[s]}
            c = dict(replay(rec[s], rule, window, classes))

            def first(curve: dict[int, float], t: float) -> int:
                return min([n for n, a in curve.items() if a is not None and a >= t] or [10**9])

            pm, pc = first(m, 0.95 * full), first(c, 0.95 * full)
            r95.append(pc / pm)
            r98.append(first(c, 0.98 * full) / first(m, 0.98 * full))
            finals.append(c[max(c)] - m[max(m)])
            for n in set(m) & set(c):
                if n >= max(pm, pc):
                    points += 1
                    below += c[n] < m[n]
        name = rule if rule in ("trained", "query", "avg") or window == 0 else f"{rule}, W={window}"
        print(f"| {name} | {np.mean(finals):+.4f} | {below}/{points} | {statistics.median(r95):.2f} / {statistics.median(r98):.2f} |")


def seeds_of(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi) + 1)) if hi else [int(s) for s in text.split(",")]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record", help="run the default loop, recording both fits each round")
    r.add_argument("--data", required=True, help="digits, or a folder as benchmarks/loop_labels.py reads")
    r.add_argument("--batch", type=int, default=10)
    r.add_argument("--max-labels", type=int, default=400)
    r.add_argument("--seeds", type=seeds_of, default=seeds_of("0-9"), help="e.g. 0-9 or 0,3,5")
    r.add_argument("--out", required=True)
    r.add_argument("--weights", type=lambda t: [float(w) for w in t.split(",")], default=[],
                   help="also refit each round's pseudo-labeled set from scratch with the pseudo-labeled rows "
                        "weighted each of these (e.g. 1,0.5,0.2); score shows them as wW")
    s = sub.add_parser("score", help="replay the rules on recorded loops")
    s.add_argument("records")
    s.add_argument("--margin", required=True, help="benchmarks/loop_labels.py's JSON with a margin row, same seeds")
    s.add_argument("--windows", type=lambda t: [int(w) for w in t.split(",")], default=[3, 5, 8, 10])
    s.add_argument("--rules", type=lambda t: t.split(","), default=["geq", "sh1.0", "sh0.95", "sh0.9", "sh0.85"])
    s.add_argument("--classes", type=int, default=0, help="the pool's classes, for records made without them")
    s.add_argument("--weighted", type=lambda t: t.split(","), default=[],
                   help="rules from --weights records: wW (weight W every round), dA (weight min(1, A / labels)), "
                        "cA (min(1, A x classes / labels)); RULE+wW etc.: a rule of --rules with that weighting")
    ns = p.parse_args()
    record(ns) if ns.cmd == "record" else score(ns)


if __name__ == "__main__":
    main()
