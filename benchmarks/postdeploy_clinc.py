"""Post-deployment triage policies on CLINC150: which predictions should people review, given the
same review hours, to lower a deployed intent classifier's production error rate the most?

    .venv/bin/python benchmarks/postdeploy_clinc.py --data ../shared/data/clinc150 --seeds 0 1 2 \\
        --hours 0.25 --out /tmp/postdeploy_clinc.json

Scenario (per seed): ``--unseen-domains`` of CLINC's 10 domains are left out of training and
appear only after deployment. Version v1 (logistic regression on the MiniLM embeddings) is trained
on ``--per-intent`` labeled examples of each remaining intent. Everything else (all splits, the
out-of-scope queries included) is production traffic: ``--traffic`` predictions over ``--days``
days, and a disjoint ``--eval`` sample of the same traffic that measures the production error rate
(an out-of-scope query answered with an intent is an error). Users flag ``--flag-rate`` of the
wrong answers (and ``--false-flag-rate`` of the right ones).

Each day, through clicloop's post-deployment loop on a fresh SQLite ledger per policy: ingest the
day's predictions; triage them with a random audit (``--audit-rate``, the same predictions for
every policy, held out of training: they estimate the error rate and gate promotions) and with
the compared policy under a daily review budget of ``--hours`` (30 s per review); review both
through the simulated crowd (151 labels: every intent and out_of_scope); retrain on v1's labels
plus the non-audit reviews; promote the candidate only if it beats the serving version on the
audited slice. The next day is served by whatever serves then.

Policies: random (random-review), low-confidence, strategy-score (margin), user-flag, a
combination (user-flag or low confidence), and novelty (cosine distance to the serving model's
training inputs). The "Floor" line is a model trained on v1's labels plus every production
prediction, correctly labeled: what reviewing everything would buy with this model class. Reported per policy over seeds: the production error
rate on the eval sample at the end, its reduction from v1, the ratio of that reduction to random
review's, review hours used, errors fixed per human hour, promotions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import os

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("CLICLOOP_WORKER_SALT", "clicloop-benchmarks")  # throwaway ledgers: no key file per run in ~/.config

OOS = "out_of_scope"
DAY = 86_400.0
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
POLICIES: dict[str, Any] = {
    "random": {"name": "random-review", "params": {"rate": 1.0}},
    "low-confidence": {"name": "low-confidence", "params": {"threshold": 0.5}},
    "strategy-score": {"name": "strategy-score", "params": {"strategy": "margin", "threshold": 0.5}},
    "user-flag": "user-flagged",
    "flag-or-low-confidence": {"any": ["user-flagged", {"name": "low-confidence", "params": {"threshold": 0.5}}]},
    "novelty": {"name": "novelty", "params": {"max_unknown_share": None, "min_distance": 0.0}},
}


def load(folder: Path) -> dict[str, Any]:
    """Rows, embeddings and the intent -> domain map of CLINC150 (``oos`` becomes out_of_scope)."""
    name = folder.name
    rows = [json.loads(line) for line in (folder / f"{name}.jsonl").open(encoding="utf-8")]
    E = np.load(folder / f"{name}.minilm.npy").astype(np.float32)
    domains = json.loads((folder / "domains.json").read_text(encoding="utf-8"))
    labels = np.array([OOS if r["label"] == "oos" else r["label"] for r in rows], dtype=object)
    return {"text": [r["text"] for r in rows], "label": labels, "split": np.array([r["split"] for r in rows]), "E": E,
            "domains": domains}


def split(data: dict[str, Any], seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """The seed's unseen domains, v1's labeled rows, the production stream (per day) and the eval sample."""
    rng = np.random.default_rng(seed)
    names = sorted(data["domains"])
    unseen = sorted(rng.choice(names, args.unseen_domains, replace=False).tolist())
    known = sorted(i for d in names if d not in unseen for i in data["domains"][d])
    label = data["label"]
    base = []
    for intent in known:
        pool = np.flatnonzero((label == intent) & (data["split"] == "train"))
        base += rng.choice(pool, args.per_intent, replace=False).tolist()
    rest = np.setdiff1d(np.arange(len(label)), base)
    rest = rng.permutation(rest)[: args.traffic + args.eval]
    return {"unseen": unseen, "known": known, "base": np.array(base), "eval": rest[: args.eval],
            "days": np.array_split(rest[args.eval:], args.days)}


class Featurizer:
    """Rows -> MiniLM embeddings, looked up by text (stands in for running the encoder)."""

    def __init__(self, data: dict[str, Any]):
        self.E = data["E"]
        self.index = {t: i for i, t in enumerate(data["text"])}

    def __call__(self, rows: Any) -> np.ndarray:
        return self.E[[self.index[r["text"]] for r in rows]]


def predict(model: Any, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    proba = model.predict_proba(X)
    return np.asarray(model.classes_, dtype=object)[proba.argmax(1)], proba.max(1)


def run_policy(data: dict[str, Any], parts: dict[str, Any], seed: int, policy: str, args: argparse.Namespace,
               v1: Any, workdir: Path) -> dict[str, Any]:
    """One policy, one seed: the daily loop on its own ledger; the end-of-run figures."""
    from clicloop.backends.simulated import SimulatedCrowd
    from clicloop.orchestrator.ledger import Ledger
    from clicloop.orchestrator.training.models import logreg
    from clicloop.orchestrator.postdeploy import DeploymentStore, ingest, metrics
    from clicloop.orchestrator.postdeploy.conditions import TriageContext, normalised
    from clicloop.orchestrator.postdeploy.learn import Learner, corrections
    from clicloop.orchestrator.postdeploy.review import Reviewer
    from clicloop.orchestrator.postdeploy.triage import Triage, build_policy, triage_registry

    t0 = time.perf_counter()
    featurize, label, texts = Featurizer(data), data["label"], data["text"]
    registry = triage_registry()
    audit = build_policy({"name": "random-audit", "params": {"rate": args.audit_rate}}, registry)
    capped = build_policy({"all": [POLICIES[policy], {"name": "daily-budget", "params": {
        "hours": args.hours, "seconds_per_review": args.seconds_per_review}}]}, registry)
    flags = np.random.default_rng([seed, 7])  # the same users for every policy: a flag is a function of (seed, row)
    flag_u = flags.random(len(label))
    truth: dict[str, str] = {}
    reviewed_labels = [*sorted(set(label.tolist()) - {OOS}), OOS]
    daily = []
    with Ledger(f"sqlite:///{workdir / f'{policy}-{seed}.db'}") as ledger:
        store = DeploymentStore(ledger, "assistant")
        learner = Learner(store, lambda: logreg(C=args.C, max_iter=300), (data["E"][parts["base"]], label[parts["base"]].tolist()),
                          featurize=featurize, min_slice=30)
        learner.deploy("v1", v1, n_train=len(parts["base"]))
        crowd = SimulatedCrowd(reward=0.05, seconds_median=8.0)
        reviewers = [Reviewer(store, crowd, "simulated", reviewed_labels, policy=name, truth=truth, seed=seed, poll_s=0.0,
                              clock=lambda: now[0]) for name in ("audit", policy)]
        now = [START]
        policy_hours, policy_found, policy_reviews = 0.0, 0, 0
        for d, rows in enumerate(parts["days"]):
            serving = store.serving() or "v1"
            model = learner.model(serving)
            predicted, confidence = predict(model, data["E"][rows])
            wrong = predicted != label[rows]
            recs = []
            for j, (i, p, c, w) in enumerate(zip(rows, predicted, confidence, wrong)):
                rec = {"id": f"q{i}", "model_version": serving, "predicted_label": str(p), "confidence": float(c),
                       "text": texts[i], "time": START + d * DAY + j * (DAY / len(rows))}
                if flag_u[i] < (args.flag_rate if w else args.false_flag_rate):
                    rec["feedback"] = "thumbs_down"
                recs.append(rec)
                truth[rec["id"]] = str(label[i])
            ingest(ledger, "assistant", recs)
            reference = None
            if policy == "novelty":  # the only policy that needs the training inputs (one more read of the reviews)
                trained = [c for c in corrections(store) if not c["audit"]]
                reference = normalised(np.vstack([data["E"][parts["base"]], *([featurize(trained)] if trained else [])]))
            ctx = TriageContext(model=model, featurize=featurize, registry=registry, reference=reference)
            Triage(store, "audit", audit, ctx).run()
            Triage(store, policy, capped, ctx).run()
            now[0] = START + (d + 1) * DAY  # reviews come in by the end of the day
            reviewers[0].run()
            before = store.review_spent()["total_hours"]
            done = reviewers[1].run()
            policy_hours += store.review_spent()["total_hours"] - before
            policy_found += done.corrected + done.out_of_scope
            policy_reviews += done.answered
            gate = learner.gate(learner.retrain(f"v{d + 2}"))
            daily.append({"day": d, "serving": serving, "true_error": float(wrong.mean()), "promoted": gate.promoted})
        for reviewer in reviewers:
            reviewer.close()
        final = learner.model(store.serving())
        err = float(np.mean(predict(final, data["E"][parts["eval"]])[0] != label[parts["eval"]]))
        fixed = metrics.errors_fixed_per_hour(store)
        est = metrics.audit_error_rate(store, since=START + (args.days - 1) * DAY)
        return {"policy": policy, "seed": seed, "error_end": err, "serving": store.serving(), "daily": daily,
                "promotions": sum(x["promoted"] for x in daily), "reviews": fixed["reviews"], "errors_fixed": fixed["errors_fixed"],
                "hours": fixed["hours"], "per_hour": fixed["per_hour"], "policy_reviews": policy_reviews,
                "policy_hours": policy_hours, "policy_errors_found": policy_found,
                "last_day_audit": {"n": est.n, "rate": est.rate, "low": est.low, "high": est.high,
                                   "true": daily[-1]["true_error"]}, "seconds": time.perf_counter() - t0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    from clicloop.orchestrator.training.models import logreg

    threadpool_limits(1)  # small fits: one BLAS thread each is ~10x faster on a shared 2-core machine

    data = load(Path(args.data))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            parts = split(data, seed, args)
            v1 = logreg(C=args.C, max_iter=300).fit(data["E"][parts["base"]], data["label"][parts["base"]].astype(str))
            error_v1 = float(np.mean(predict(v1, data["E"][parts["eval"]])[0] != data["label"][parts["eval"]]))
            # the floor: every production prediction of the days reviewed, correctly: what reviewing
            # everything buys with this model class (a policy reviews a subset of the same predictions)
            seen = np.concatenate([parts["base"], *parts["days"]])
            full = logreg(C=args.C, max_iter=300).fit(data["E"][seen], data["label"][seen].astype(str))
            error_floor = float(np.mean(predict(full, data["E"][parts["eval"]])[0] != data["label"][parts["eval"]]))
            print(f"seed {seed}: error v1 {error_v1:.3f}, floor (all traffic labeled) {error_floor:.3f}", file=sys.stderr)
            for policy in args.policies:
                out = run_policy(data, parts, seed, policy, args, v1, Path(tmp))
                out.update(error_v1=error_v1, error_floor=error_floor, reduction=error_v1 - out["error_end"], unseen=parts["unseen"])
                results.append(out)
                print(f"seed {seed} {policy:>24}: error {error_v1:.3f} -> {out['error_end']:.3f}, {out['reviews']} reviews, "
                      f"{out['hours']:.2f} h, {out['promotions']} promotions ({out['seconds']:.0f} s)", file=sys.stderr)
    return {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "results": results}


def summarize(report: dict[str, Any]) -> dict[str, Any]:
    """Per policy: mean and spread over seeds; the ratio of its mean reduction to random's, and the
    smallest and largest per-seed (paired) ratios."""
    rows = report["results"]
    random = {r["seed"]: r["reduction"] for r in rows if r["policy"] == "random"}
    out = {}
    for policy in dict.fromkeys(r["policy"] for r in rows):
        mine = [r for r in rows if r["policy"] == policy]
        ratios = [r["reduction"] / random[r["seed"]] for r in mine if random.get(r["seed"], 0) > 0]
        out[policy] = {
            "error_v1": float(np.mean([r["error_v1"] for r in mine])),
            "error_floor": float(np.mean([r.get("error_floor", np.nan) for r in mine])),
            "error_end": [float(np.mean([r["error_end"] for r in mine])), float(np.std([r["error_end"] for r in mine]))],
            "reduction": [float(np.mean([r["reduction"] for r in mine])), float(np.std([r["reduction"] for r in mine]))],
            "ratio_to_random": ([float(np.mean([r["reduction"] for r in mine]) / np.mean(list(random.values()))),
                                 float(np.min(ratios)), float(np.max(ratios))] if ratios else None),
            "hours": float(np.mean([r["hours"] for r in mine])), "reviews": float(np.mean([r["reviews"] for r in mine])),
            "policy_hours": float(np.mean([r["policy_hours"] for r in mine])),
            "policy_reviews": float(np.mean([r["policy_reviews"] for r in mine])),
            "policy_per_hour": float(np.mean([r["policy_errors_found"] / r["policy_hours"] for r in mine if r["policy_hours"]])),
            "audit": [float(np.mean([abs(r["last_day_audit"]["rate"] - r["last_day_audit"]["true"]) for r in mine])),
                      float(np.mean([r["last_day_audit"]["low"] <= r["last_day_audit"]["true"] <= r["last_day_audit"]["high"]
                                     for r in mine]))],
            "promotions": float(np.mean([r["promotions"] for r in mine])), "seeds": len(mine)}
    return out


def markdown(report: dict[str, Any]) -> str:
    a, summary = report["args"], summarize(report)
    lines = [f"Seeds {a['seeds']}; {a['days']} days x {a['traffic'] // a['days']} predictions; review budget "
             f"{a['hours']} h/day per policy (+ random audits at {a['audit_rate']:.0%}, the same for all); "
             f"{a['unseen_domains']} unseen domains; v1 on {a['per_intent']} labels per known intent.", "",
             "| policy | error v1 | error at the end (sd) | reduction (sd) | x random [per-seed min, max] | policy reviews "
             "| policy h | errors found / policy h | all review h | promotions |", "|---|---|---|---|---|---|---|---|---|---|"]
    for policy, s in summary.items():
        ratio = "-" if s["ratio_to_random"] is None else "{:.2f} [{:.2f}, {:.2f}]".format(*s["ratio_to_random"])
        lines.append(f"| {policy} | {s['error_v1']:.3f} | {s['error_end'][0]:.3f} ({s['error_end'][1]:.3f}) | "
                     f"{s['reduction'][0]:.3f} ({s['reduction'][1]:.3f}) | {ratio} | {s['policy_reviews']:.0f} | "
                     f"{s['policy_hours']:.2f} | {s['policy_per_hour']:.1f} | {s['hours']:.2f} | {s['promotions']:.1f} |")
    audit = np.mean([s["audit"][0] for s in summary.values()]), np.mean([s["audit"][1] for s in summary.values()])
    lines += ["", f"Random audits of the last day's traffic (~{a['audit_rate'] * a['traffic'] / a['days']:.0f} reviews): "
                  f"mean |estimate - true error| {audit[0]:.3f}; the 95% interval held the true rate in {audit[1]:.0%} of runs."]
    if "random" in summary and not np.isnan(summary["random"]["error_floor"]):
        r = summary["random"]
        reachable = (r["error_v1"] - r["error_floor"]) / r["reduction"][0] if r["reduction"][0] > 0 else float("inf")
        lines += ["", f"Floor: a model trained on v1's labels plus every production prediction of the {a['days']} days, "
                      f"correctly labeled (every prediction reviewed), has error {r['error_floor']:.3f} on the eval sample: "
                      f"a reduction of {r['error_v1'] - r['error_floor']:.3f}, {reachable:.2f}x random review's mean reduction "
                      f"at this budget (the most any policy can expect to reach with this model class)."]
    best = max((p for p in summary if p != "random"), key=lambda p: summary[p]["reduction"][0], default=None)
    if best and summary[best]["ratio_to_random"]:
        met = summary[best]["ratio_to_random"][0] >= 2
        lines += ["", f"Best policy: {best}, {summary[best]['ratio_to_random'][0]:.2f}x random's mean reduction, "
                      f"{summary[best]['ratio_to_random'][1]:.2f}x in its worst seed (target >= 2x: {'met' if met else 'NOT met'})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", help="the clinc150 folder (JSONL + MiniLM embeddings + domains.json)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--policies", nargs="+", default=["random", "low-confidence", "strategy-score", "user-flag"],
                    choices=list(POLICIES))
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--traffic", type=int, default=10_000, help="production predictions over all days")
    ap.add_argument("--eval", type=int, default=3000, help="held-out production sample measuring the error rate")
    ap.add_argument("--hours", type=float, default=0.25, help="review hours per day for the compared policy")
    ap.add_argument("--seconds-per-review", type=float, default=30.0, help="the budget's cost of one review")
    ap.add_argument("--audit-rate", type=float, default=0.02)
    ap.add_argument("--per-intent", type=int, default=10)
    ap.add_argument("--unseen-domains", type=int, default=2)
    ap.add_argument("--flag-rate", type=float, default=0.3, help="share of wrong answers users flag")
    ap.add_argument("--false-flag-rate", type=float, default=0.02, help="share of right answers users flag")
    ap.add_argument("--C", type=float, default=10.0)
    ap.add_argument("--out", type=Path, help="write the full results as JSON")
    ap.add_argument("--report", type=Path, help="print the table of an earlier --out file and exit")
    args = ap.parse_args()
    if args.report:
        print(markdown(json.loads(args.report.read_text())))
        return
    if not args.data:
        ap.error("--data is required (the clinc150 folder)")
    if "random" not in args.policies:
        args.policies.insert(0, "random")
    report = run(args)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=str))
    print(markdown(report))


if __name__ == "__main__":
    main()
