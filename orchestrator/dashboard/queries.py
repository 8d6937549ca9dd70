"""The dashboard's SQL: the ledger's accounting, grouped and filtered (loop, backend, model
version, dates). Every figure is a grouped sum computed by the database; Python only turns sums
into ratios. Without filters the figures equal ``clicloop.orchestrator.ledger.accounting``'s (a test
checks it); the filters are why these queries live here rather than there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, case, func, inspect, literal, null, select, union_all

from clicloop.orchestrator.dashboard.source import REVIEW_SUFFIX, Filters
from clicloop.orchestrator.errors import LedgerError
from clicloop.orchestrator.ledger import schema as s
from clicloop.orchestrator.ledger.accounting import INCOME_KINDS, PLANNED_KINDS, _wages
from clicloop.orchestrator.ledger.db import has_table
from clicloop.orchestrator.ledger.money import from_micros, to_micros
from clicloop.orchestrator.ledger.unpaid import loose

a, p, w, rv, r = s.assignments.c, s.payments.c, s.workers.c, s.reviews.c, s.rounds.c


@dataclass(frozen=True)
class Scope:
    """Filters resolved against the ledger: the loops covered and, for a model version, the
    first round NOT counted (work of rounds ``< before_round`` trained it)."""

    filters: Filters
    loops: tuple[str, ...] | None
    before_round: int | None
    start: float | None
    end: float | None


def resolve(engine: Engine, filters: Filters) -> Scope:
    """Check the filters against the ledger (unknown names fail with the known ones listed)."""
    start, end = filters.time_range()
    loops: tuple[str, ...] | None = (filters.loop,) if filters.loop else None
    before = None
    with engine.connect() as conn:
        if filters.loop and conn.execute(select(s.loops.c.name).where(s.loops.c.name == filters.loop)).first() is None:
            known = conn.execute(select(s.loops.c.name).order_by(s.loops.c.name)).scalars().all()
            raise LedgerError(f"no loop {filters.loop!r} in the ledger; loops there: {', '.join(known) or '(none)'}")
        if filters.backend and conn.execute(select(w.backend).where(w.backend == filters.backend).limit(1)).first() is None:
            known = conn.execute(select(w.backend).distinct().order_by(w.backend)).scalars().all()
            raise LedgerError(f"no backend {filters.backend!r} answered in the ledger; backends there: {', '.join(known) or '(none)'}")
        if filters.model_version:
            loops, before = _version_scope(conn, filters)
    return Scope(filters, loops, before, start, end)


def _version_scope(conn: Any, filters: Filters) -> tuple[tuple[str, ...], int | None]:
    """A model version's loops and first round not counted: a labeling loop's version covers the
    rounds that trained it; a deployed version (post-deployment) covers its deployment's review work."""
    version = filters.model_version
    rows = conn.execute(select(r.loop, r.round_no, r.stop_reason).where(r.model_version == version)
                        .order_by(r.round_no, r.loop)).all()
    labeling = [x for x in rows if not x.loop.endswith(REVIEW_SUFFIX)]
    if labeling:
        from clicloop.orchestrator.reporting.laborcard import first_round_not_counted

        found: tuple[tuple[str, ...], int | None] = (
            (labeling[0].loop,), first_round_not_counted(int(labeling[0].round_no), labeling[0].stop_reason))
    else:
        deployments = (conn.execute(select(s.pd_models.c.deployment).where(s.pd_models.c.version == version).distinct()).scalars().all()
                       if inspect(conn).has_table(s.pd_models.name) else [])
        if not deployments:
            raise LedgerError(f"no model version {version!r} in the ledger; versions look like '<loop>-r<round>' "
                              "(or a deployed version); pick one from the filter form")
        found = (tuple(f"{d}{REVIEW_SUFFIX}" for d in sorted(deployments)), None)
    if filters.loop and filters.loop not in found[0]:
        raise LedgerError(f"model version {version!r} belongs to {', '.join(found[0])}, not {filters.loop!r}; "
                          "clear one of the two filters")
    return found


def model_versions(engine: Engine, loop: str | None = None) -> list[str]:
    """Model versions for the filter form: labeling loops' versions in round order, then deployed versions."""
    with engine.connect() as conn:
        query = select(r.loop, r.model_version).order_by(r.loop, r.round_no)
        rows = conn.execute(query.where(r.loop == loop) if loop else query).all()
        out = [v for lp, v in rows if not lp.endswith(REVIEW_SUFFIX)]
        if inspect(conn).has_table(s.pd_models.name):
            m = s.pd_models.c
            query = select(m.version).order_by(m.deployment, m.created_at, m.version)
            if loop:
                query = query.where(m.deployment == loop.removesuffix(REVIEW_SUFFIX))
            out += list(conn.execute(query).scalars())
    return list(dict.fromkeys(out))


def _where(cols: Any, scope: Scope, *, round_col: str = "round_no", time_col: str = "recorded_at", backend: bool = True,
           no_index: bool = False) -> list[Any]:
    """The scope as WHERE terms on a table's columns. ``no_index`` writes them in a form no index
    serves (``|| ''``, ``+ 0``): for the few reviews joined to their answers, where SQLite (no
    statistics) would otherwise walk every answer of the loop through an index (as
    ``accounting._grouped`` does)."""
    def col(name: str) -> Any:
        c = cols[name]
        if not no_index:
            return c
        return c.concat("") if name in ("loop", "backend") else c + 0

    out = []
    if scope.loops is not None:
        out.append(col("loop").in_(scope.loops))
    if backend and scope.filters.backend:
        out.append(col("backend") == scope.filters.backend)
    if scope.before_round is not None:
        out.append(col(round_col) < scope.before_round)
    if scope.start is not None:
        out.append(col(time_col) >= scope.start)
    if scope.end is not None:
        out.append(col(time_col) < scope.end)
    return out


def rounds(engine: Engine, scope: Scope) -> list[dict[str, Any]]:
    """Every round in scope: loop, round_no, model_version, n_labeled, metric, recorded_at, and
    ``n_eval`` (the evaluation items the metric was measured on; None when not recorded)."""
    where = _where(r, replace(scope, before_round=None), backend=False)
    if scope.before_round is not None:  # a model version's curve ends with the version itself
        where.append(r.round_no <= scope.before_round)
    e = s.eval_sizes.c
    with engine.connect() as conn:
        known = has_table(conn, s.eval_sizes)  # a ledger from before schema 0007 (never migrated here) has no eval sizes
        query = select(r.loop, r.round_no, r.model_version, r.n_labeled, r.metric_name, r.metric, r.recorded_at, r.stop_reason,
                       (e.n_items if known else null()).label("n_eval"))
        if known:
            query = query.outerjoin(s.eval_sizes, (e.loop == r.loop) & (e.round_no == r.round_no))
        rows = conn.execute(query.where(*where).order_by(r.loop, r.round_no)).all()
    return [dict(x._mapping) for x in rows]


def effort_by_round(engine: Engine, scope: Scope) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (loop, round): answers, active and unpaid seconds (qualification counted in the
    worker's first round), planned worker pay (``income``: rewards and bonuses), back-pay
    (``adjustment``) and fees, exact, as ``accounting.effort_by_round``."""
    work, money_rows, qual_rows = parallel(
        engine,
        select(a.loop, a.round_no, func.count(), func.sum(a.active_s), func.sum(a.search_s + a.wait_s + a.returned_s))
        .where(*_where(a, scope)).group_by(a.loop, a.round_no),
        select(p.loop, p.round_no, func.sum(case((p.kind.in_(PLANNED_KINDS), p.amount_micros), else_=0)),
               func.sum(case((p.kind == "adjustment", p.amount_micros), else_=0)),
               func.sum(case((p.kind.in_(INCOME_KINDS), 0), else_=p.amount_micros))).where(*_where(p, scope)).group_by(p.loop, p.round_no),
        select(w.loop, w.first_round, func.sum(w.qualification_s)).where(*_where(w, scope, round_col="first_round"))
        .group_by(w.loop, w.first_round))
    money = {(lp, rn): (inc, adj, fee) for lp, rn, inc, adj, fee in money_rows}
    qual = {(lp, rn): q for lp, rn, q in qual_rows}
    for (lp, rn), seconds in _loose(engine, scope, ("loop", "round_no")).items():  # counted as qualification is
        qual[(lp, rn)] = float(qual.get((lp, rn)) or 0) + seconds
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for lp, rn, n, active, unpaid in work:
        inc, adj, fee = money.get((lp, rn), (0, 0, 0))
        out[(lp, rn)] = {"answers": int(n), "income": from_micros(inc), "adjustment": from_micros(adj), "fee": from_micros(fee),
                         "active_s": float(active or 0), "unpaid_s": float(unpaid or 0) + float(qual.get((lp, rn)) or 0)}
    for key in list(money) + [k for k, v in qual.items() if v]:  # pay or unpaid time in a round without answers in scope
        if key not in out:
            inc, adj, fee = money.get(key, (0, 0, 0))
            out[key] = {"answers": 0, "income": from_micros(inc), "adjustment": from_micros(adj), "fee": from_micros(fee),
                        "active_s": 0.0, "unpaid_s": float(qual.get(key) or 0)}
    return out


def _loose(engine: Engine, scope: Scope, keys: Sequence[str]) -> dict[tuple[Any, ...], float]:
    """Seconds of unpaid time no answer carries (``ledger.unpaid.loose``: the waiting after
    workers' last answers, recorded when a loop stops, and returned work) in scope, per ``keys``
    (of loop, backend, worker, round_no, kind); none on a ledger from before schema 0008."""
    with engine.connect() as conn:
        q = loose(conn)
        if q is None:
            return {}
        rows = conn.execute(select(*(q.c[k] for k in keys), func.sum(q.c.seconds)).where(*_where(q.c, scope))
                            .group_by(*(q.c[k] for k in keys))).all()
    return {tuple(x[:-1]): float(x[-1] or 0) for x in rows}


SUMS = ("answers", "active_s", "unpaid_s", "income", "fees", "rejected")


def wages(engine: Engine, scope: Scope, keys: Sequence[str] = ("loop", "backend", "worker")) -> list[dict[str, Any]]:
    """Per group (``keys`` among loop, backend, worker): answers, hours, income, fees,
    rejections and the effective hourly wage on paid and on total time (as ``accounting.by_worker``)."""
    zero = literal(0.0)

    def part(cols: Any, table: Any, answers: Any, active: Any, unpaid: Any, income: Any, fees: Any, rejected: Any,
             where: list[Any], grouped: bool = True) -> Any:
        query = (select(*(cols[k] for k in keys), answers.label("answers"), active.label("active_s"), unpaid.label("unpaid_s"),
                        income.label("income"), fees.label("fees"), rejected.label("rejected")).select_from(table).where(*where))
        return query.group_by(*(cols[k] for k in keys)) if grouped else query

    work = part(a, s.assignments, func.count(), func.sum(a.active_s), func.sum(a.search_s + a.wait_s + a.returned_s),
                zero, zero, zero, _where(a, scope))
    money = part(p, s.payments, literal(0), zero, zero, func.sum(case((p.kind.in_(INCOME_KINDS), p.amount_micros), else_=0)),
                 func.sum(case((p.kind.in_(INCOME_KINDS), 0), else_=p.amount_micros)), zero, _where(p, scope))
    quals = part(w, s.workers, literal(0), zero, func.sum(w.qualification_s), zero, zero, zero,
                 _where(w, scope, round_col="first_round"))
    # one row per rejection, driven from the few reviews (see _where's no_index)
    rejected = part(a, s.reviews.join(s.assignments, a.task_key == rv.task_key), literal(0), zero, zero, zero, zero,
                    literal(1), _where(a, scope, no_index=True) + [rv.decision == "reject"], grouped=False)
    sums: dict[tuple[Any, ...], list[Any]] = {}
    for part_rows in parallel(engine, work, money, union_all(quals, rejected)):  # each stream scans its own index
        for x in part_rows:
            acc = sums.setdefault(tuple(x[: len(keys)]), [0, 0.0, 0.0, 0, 0, 0])
            for i, v in enumerate(x[len(keys) :]):
                acc[i] += float(v or 0) if SUMS[i] in ("active_s", "unpaid_s") else int(v or 0)  # money: whole micro-units
    for key, seconds in _loose(engine, scope, keys).items():  # waiting after the last answers, returned work
        sums.setdefault(key, [0, 0.0, 0.0, 0, 0, 0])[2] += seconds
    return [_wages(dict(zip(keys, key)), *v) for key, v in sorted(sums.items())]


def parallel(engine: Engine, *queries: Any) -> list[list[Any]]:
    """Run independent queries at once, each on its own connection: the database does the work
    (SQLite and the PostgreSQL driver release the GIL), so a view waits for the slowest scan
    rather than for their sum."""
    from concurrent.futures import ThreadPoolExecutor

    def run(query: Any) -> list[Any]:
        with engine.connect() as conn:
            return list(conn.execute(query).all())

    with ThreadPoolExecutor(max_workers=len(queries), thread_name_prefix="clicloop-dashboard") as pool:
        return list(pool.map(run, queries))


def rollup(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of :func:`wages` summed to coarser groups (e.g. workers to backends), without another
    pass over the ledger: every figure behind a wage is a sum."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        acc = groups.setdefault(tuple(row[k] for k in keys), [0, 0.0, 0.0, 0, 0, 0])
        for i, v in enumerate((row["answers"], row["active_hours"] * 3600, row["unpaid_hours"] * 3600,
                               to_micros(row["income"]), to_micros(row["fees"]), row["rejected"])):
            acc[i] += v
    return [_wages(dict(zip(keys, key)), *v) for key, v in sorted(groups.items())]


UNPAID = ("search", "wait", "returned", "qualification")


def unpaid_by_loop_kind(engine: Engine, scope: Scope) -> dict[str, dict[str, float]]:
    """Per loop in scope: unpaid hours by kind (search, wait, returned, qualification) and the
    paid ``active`` hours, as ``accounting.unpaid_by_kind``."""
    with engine.connect() as conn:
        work = conn.execute(select(a.loop, *(func.sum(c) for c in (a.search_s, a.wait_s, a.returned_s, a.active_s)))
                            .where(*_where(a, scope)).group_by(a.loop)).all()
        qual = dict(conn.execute(select(w.loop, func.sum(w.qualification_s)).where(*_where(w, scope, round_col="first_round"))
                                 .group_by(w.loop)).all())
    out = {lp: {"search": float(x or 0) / 3600, "wait": float(y or 0) / 3600, "returned": float(z or 0) / 3600,
                "qualification": float(qual.get(lp) or 0) / 3600, "active": float(act or 0) / 3600} for lp, x, y, z, act in work}
    for lp, q in qual.items():
        out.setdefault(lp, {"search": 0.0, "wait": 0.0, "returned": 0.0, "qualification": float(q or 0) / 3600, "active": 0.0})
    for (lp, kind), seconds in _loose(engine, scope, ("loop", "kind")).items():  # waiting after the last answers, returned work
        out.setdefault(lp, {"search": 0.0, "wait": 0.0, "returned": 0.0, "qualification": 0.0, "active": 0.0})[kind] += seconds / 3600
    return out


def unpaid_by_kind(engine: Engine, scope: Scope) -> dict[str, float]:
    """Unpaid hours by kind over everything in scope."""
    per_loop = unpaid_by_loop_kind(engine, scope)
    return {k: sum(v[k] for v in per_loop.values()) for k in UNPAID}


def rejections(engine: Engine, scope: Scope) -> dict[str, Any]:
    """Answers in scope, reviewed and rejected ones, rejections per reason, and pay reversed (per
    currency: 0.08 USD and 0.14 EUR read "0.22 EUR/USD")."""
    joined = s.reviews.join(s.assignments, rv.task_key == a.task_key)  # driven from the few reviews
    where = _where(a, scope, no_index=True)
    with engine.connect() as conn:
        reviewed, rejected = conn.execute(select(func.count(), func.coalesce(func.sum(case((rv.decision == "reject", 1), else_=0)), 0))
                                          .select_from(joined).where(*where)).one()
        reasons = conn.execute(select(func.coalesce(rv.reason, "(no reason)"), func.count()).select_from(joined)
                               .where(*where, rv.decision == "reject").group_by(rv.reason)
                               .order_by(func.count().desc(), rv.reason)).all()
        standing = select(rv.task_key).where(rv.task_key == p.task_key, rv.decision == "reject").exists()  # not overturned
        reversed_ = dict(conn.execute(select(p.currency, func.sum(p.amount_micros)).where(  # per currency: never summed across
            *_where(p, scope), p.kind.in_(INCOME_KINDS), p.amount_micros < 0, standing).group_by(p.currency)).all())
        answers = conn.execute(select(func.count()).select_from(s.assignments).where(*_where(a, scope))).scalar_one()
    return {"answers": int(answers), "reviewed": int(reviewed), "rejected": int(rejected or 0),
            "reasons": [(str(reason), int(n)) for reason, n in reasons],
            "income_reversed": {cur: -from_micros(m) for cur, m in sorted(reversed_.items())}}


def backends(engine: Engine) -> list[str]:
    """Every backend that answered in the ledger (for the filter form)."""
    with engine.connect() as conn:
        return list(conn.execute(select(w.backend).distinct().order_by(w.backend)).scalars())


def currencies(engine: Engine, scope: Scope) -> list[str]:
    """The currencies paid in scope (a view mixing several says so): the currency of each
    (loop, backend) pair, one indexed lookup each (a backend pays in one currency)."""
    with engine.connect() as conn:
        pairs = conn.execute(select(w.loop, w.backend).where(*_where(w, replace(scope, before_round=None, start=None, end=None)))
                             .distinct()).all()
        found = {conn.execute(select(p.currency).where(p.loop == lp, p.backend == b).limit(1)).scalar() for lp, b in pairs}
    return sorted(c for c in found if c)
