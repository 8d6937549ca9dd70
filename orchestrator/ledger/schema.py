"""Ledger tables (SQLAlchemy Core), migrated with Alembic (``orchestrator/ledger/migrations``).

Facts are appended with idempotency keys and never updated in place, except a round's and a
task's status. Money is stored as integer micro-units (1e-6 of ``currency``) so sums are exact
in SQL on every database; seconds as floats; times as epoch seconds.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text

APP = "clicloop"
MICROS = 1_000_000
PAYMENT_KINDS = ("reward", "bonus", "adjustment", "fee", "tax", "reversal")
OVERHEAD_KINDS = ("search", "wait", "returned", "qualification")

metadata = MetaData()
_id = String(200)
_key = String(400)

meta = Table("clicloop_meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))

loops = Table(
    "loops", metadata,
    Column("name", _id, primary_key=True),
    Column("config_hash", String(64), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("seed", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
)

rounds = Table(
    "rounds", metadata,
    Column("loop", _id, primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("model_version", _id, nullable=False),
    Column("n_labeled", Integer, nullable=False),
    Column("metric_name", String(32), nullable=False),
    Column("metric", Float),
    Column("status", String(16), nullable=False),  # started | finished
    Column("stop_reason", Text),
    Column("recorded_at", Float, nullable=False),
)

tasks = Table(
    "tasks", metadata,
    Column("key", _key, primary_key=True),
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("replica", Integer, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("rank", Integer, nullable=False),  # position in the strategy's ranking
    Column("reward_micros", BigInteger),  # the reward offered, when the loop priced the task
    Column("status", String(16), nullable=False),  # created | dispatched | expired
    Column("recorded_at", Float, nullable=False),
    Index("ix_tasks_loop_round", "loop", "round_no"),
)

assignments = Table(
    "assignments", metadata,
    Column("task_key", _key, primary_key=True),
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("worker", String(64), nullable=False),  # salted pseudonym, never the raw id
    Column("label", Text),  # None when skipped
    Column("status", String(16), nullable=False),  # submitted | skipped | quarantined
    Column("reason", Text),
    Column("external_id", String(200)),
    Column("accepted_at", Float),
    Column("submitted_at", Float),
    Column("active_s", Float, nullable=False),
    Column("search_s", Float, nullable=False),
    Column("wait_s", Float, nullable=False),
    Column("returned_s", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
    # Covering indexes (migration 0003): the accounting queries read only the index, in group order
    # (benchmarks/ledger_bench.py: 1,000,000 answers; docs/benchmarks.md "Ledger").
    Index("ix_assignments_loop_round", "loop", "round_no", "status", "active_s", "search_s", "wait_s", "returned_s"),
    Index("ix_assignments_worker", "loop", "backend", "worker", "round_no", "active_s", "search_s", "wait_s", "returned_s"),
    Index("ix_assignments_item", "loop", "item_id"),  # votes of given items; verify's labels check
    Index("ix_assignments_external", "loop", "external_id"),  # an annotation id's answer (migration 0012)
)

workers = Table(
    "workers", metadata,
    Column("loop", _id, primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("worker", String(64), primary_key=True),
    Column("qualification_s", Float, nullable=False),
    Column("first_round", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

payments = Table(
    "payments", metadata,
    Column("key", _key, primary_key=True),  # e.g. <task key>/reward: a payment is made once
    Column("loop", _id, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("backend", String(100), nullable=False),
    Column("worker", String(64), nullable=False),
    Column("task_key", _key),  # None for payments not tied to one task (adjustments)
    Column("kind", String(16), nullable=False),  # see PAYMENT_KINDS
    Column("amount_micros", BigInteger, nullable=False),  # to the worker, or to the platform (fee, tax)
    Column("currency", String(8), nullable=False),
    Column("reason", Text),
    Column("recorded_at", Float, nullable=False),
    Index("ix_payments_loop_round", "loop", "round_no", "kind", "amount_micros"),  # covering (migration 0003)
    Index("ix_payments_worker", "loop", "backend", "worker", "round_no", "kind", "amount_micros"),
    Index("ix_payments_task", "task_key", "kind", "amount_micros", "worker"),  # a task's payments; verify
)

reviews = Table(
    "reviews", metadata,
    Column("task_key", _key, primary_key=True),  # one decision per assignment
    Column("loop", _id, nullable=False),
    Column("decision", String(8), nullable=False),  # accept | reject
    Column("reason", Text),  # required for a rejection
    Column("reviewer", String(100), nullable=False),
    Column("recorded_at", Float, nullable=False),
)

corrections = Table(
    "corrections", metadata,
    Column("key", _key, primary_key=True),  # <task key>@<version>
    Column("loop", _id, nullable=False),
    Column("task_key", _key, nullable=False),
    Column("item_id", _id, nullable=False),
    Column("event", String(8), nullable=False),  # updated | deleted
    Column("label", Text),
    Column("recorded_at", Float, nullable=False),
    Index("ix_corrections_loop", "loop", "task_key"),
)

labels = Table(
    "labels", metadata,
    Column("loop", _id, primary_key=True),
    Column("item_id", _id, primary_key=True),
    Column("revision", Integer, primary_key=True),  # 0 = first aggregation; corrections add revisions
    Column("label", Text),  # None: every answer was withdrawn, the item is unlabeled again
    Column("confidence", Float, nullable=False),
    Column("n_answers", Integer, nullable=False),
    Column("round_no", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

TABLES = [meta, loops, rounds, tasks, assignments, workers, payments, reviews, corrections, labels]


# == post-deployment review (issue #5; migration 0004_post_deployment) ========================
# Production predictions of deployed models, the triage decision on each (with the conditions
# that fired), the reviews people made of them, and the model versions promoted or rolled back.
# Review work itself (tasks, answers, pay) goes to the tables above under the loop
# ``<deployment>:review`` with task kind "review", so accounting splits it from labeling.

from sqlalchemy import Boolean  # noqa: E402 (kept with the section it serves)

pd_models = Table(
    "pd_models", metadata,
    Column("deployment", _id, primary_key=True),
    Column("version", _id, primary_key=True),
    Column("labels_json", Text, nullable=False),  # the label set the version may predict
    Column("parent", _id),  # the version it was retrained from
    Column("n_train", Integer, nullable=False),
    Column("n_corrections", Integer, nullable=False),  # production corrections in its training set
    Column("artifact", Text),  # where the fitted model is stored, if anywhere
    Column("created_at", Float, nullable=False),
)

pd_promotions = Table(
    "pd_promotions", metadata,
    Column("deployment", _id, primary_key=True),
    Column("seq", Integer, primary_key=True),  # the latest deploy/promote/rollback names the serving version
    Column("action", String(16), nullable=False),  # deploy | promote | reject | rollback
    Column("version", _id, nullable=False),
    Column("previous", _id),
    Column("reason", Text),
    Column("error_current", Float),  # on the audited slice: the serving version
    Column("error_candidate", Float),  # on the audited slice: the candidate
    Column("n_slice", Integer),
    Column("recorded_at", Float, nullable=False),
)

pd_predictions = Table(
    "pd_predictions", metadata,
    Column("deployment", _id, primary_key=True),
    Column("prediction_id", _id, primary_key=True),
    Column("model_version", _id, nullable=False),
    Column("text", Text),
    Column("features_json", Text),
    Column("predicted_label", Text, nullable=False),
    Column("confidence", Float),
    Column("proba_json", Text),
    Column("predicted_at", Float, nullable=False),
    Column("feedback", String(32)),  # thumbs_down | not_what_i_asked | rephrased
    Column("rephrasing", Text),
    Column("source", String(16), nullable=False),  # http | file | python
    Column("status", String(16), nullable=False),  # accepted | quarantined
    Column("reason", Text),
    Column("recorded_at", Float, nullable=False),
    Index("ix_pd_predictions_time", "deployment", "predicted_at"),
    Index("ix_pd_predictions_version", "deployment", "model_version"),
)

pd_rejects = Table(
    "pd_rejects", metadata,
    Column("key", _key, primary_key=True),  # file: <path fingerprint>@<offset>; http/python: hash of the record
    Column("deployment", _id, nullable=False),
    Column("source", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text),  # the first 2,000 characters
    Column("recorded_at", Float, nullable=False),
)

pd_offsets = Table(
    "pd_offsets", metadata,  # the one table updated in place: where a followed file was read to
    Column("deployment", _id, primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("fingerprint", String(64), nullable=False),  # hash of the file's first line
    Column("offset", BigInteger, nullable=False),
    Column("updated_at", Float, nullable=False),
)

pd_triage = Table(
    "pd_triage", metadata,
    Column("deployment", _id, primary_key=True),
    Column("prediction_id", _id, primary_key=True),
    Column("policy", String(100), primary_key=True),
    Column("review", Boolean, nullable=False),
    Column("audit", Boolean, nullable=False),  # the random audit fired: the unbiased error sample
    Column("priority", Float, nullable=False),
    Column("fired_json", Text, nullable=False),  # [{"condition", "value", "threshold"}...]
    Column("day", String(10), nullable=False),  # UTC day of the prediction (daily budgets)
    Column("model_version", _id, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Index("ix_pd_triage_review", "deployment", "policy", "review"),
)

pd_reviews = Table(
    "pd_reviews", metadata,
    Column("task_key", _key, primary_key=True),  # the review task (kind "review") in `tasks`
    Column("deployment", _id, nullable=False),
    Column("prediction_id", _id, nullable=False),
    Column("model_version", _id, nullable=False),
    Column("model_label", Text, nullable=False),
    Column("verdict", String(16), nullable=False),  # confirm | correct | out_of_scope
    Column("label", Text, nullable=False),  # the label the reviewer gave
    Column("worker", String(64), nullable=False),  # pseudonym
    Column("reviewed_at", Float, nullable=False),
    Index("ix_pd_reviews_prediction", "deployment", "prediction_id"),
)

PD_TABLES = [pd_models, pd_promotions, pd_predictions, pd_rejects, pd_offsets, pd_triage, pd_reviews]
TABLES += PD_TABLES


# == runners (migration 0005_runner_leases) ===================================================
# One runner per loop (orchestrator/runner.py): the lease a running `clicloop run` holds, renewed
# in place by its heartbeat and deleted when it stops. Not a fact: nothing else reads it back.

runner_leases = Table(
    "runner_leases", metadata,
    Column("loop", _id, primary_key=True),
    Column("holder", String(200), nullable=False),  # host:pid:random token, unique to one run
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("machine", String(64), nullable=False),  # hash of host, boot and pid namespace: where `pid` names the holder
    Column("acquired_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

TABLES.append(runner_leases)


# == continuous mode (migration 0006_continuous_versions) =====================================
# orchestrator/continuous.py: each refit is a round (its model version); `cont_versions` adds how
# many answers the loop had recorded when the version was fitted, the compute seconds it took and
# the simulated clock, where the backend has one. `cont_answers` numbers the answers in the order
# the loop recorded them and names the version current then, so an answer's staleness (answers
# between the model that chose its task and the answer) is seq - answers_seen(chosen_round).

cont_versions = Table(
    "cont_versions", metadata,
    Column("loop", _id, primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("answers_seen", Integer, nullable=False),
    Column("compute_s", Float, nullable=False),  # fit and scoring, as measured (or as the backend charged it)
    Column("clock_s", Float),  # the backend's simulated clock after the charge; None on real backends
    Column("recorded_at", Float, nullable=False),
    # the reward per answer it offered (price_rewards): -1 none (the backend's own), NULL not recorded (before 0011)
    Column("price_micros", BigInteger),
)

cont_answers = Table(
    "cont_answers", metadata,
    Column("task_key", _key, primary_key=True),
    Column("loop", _id, nullable=False),
    Column("seq", Integer, nullable=False),  # 0, 1, ...: the order the loop recorded its answers in
    Column("chosen_round", Integer, nullable=False),  # the version that chose the task
    Column("answered_round", Integer, nullable=False),  # the version current when the answer was recorded
    Column("recorded_at", Float, nullable=False),
    Index("ix_cont_answers_loop", "loop", "seq"),
)

TABLES += [cont_versions, cont_answers]


# == evaluation sets (migration 0007_eval_sizes) ==============================================
# How many items each round's metric was measured on (the evaluation set's size): the sampling
# error of the metric, and so the interval of the "cost to reach" table (reporting/reach.py).
# A round without a row (no evaluation set, or a ledger written before 0007) has no interval.

eval_sizes = Table(
    "eval_sizes", metadata,
    Column("loop", _id, primary_key=True),
    Column("round_no", Integer, primary_key=True),
    Column("n_items", Integer, nullable=False),
    Column("recorded_at", Float, nullable=False),
    Column("digest", String(64)),  # the evaluation set's fingerprint (migration 0010); None before it
)

TABLES.append(eval_sizes)


# == waiting not on any answer (migration 0008_cont_waits) ==================================
# A backend that measures waiting (the event crowd) reports it on a worker's next answer
# (assignments.wait_s). The waiting after a worker's last answer has no next answer: when a loop
# stops, it is recorded here, once per (loop, backend, worker, round), as unpaid waiting caused by
# the requester; the wage views count it with the other unpaid overhead.

cont_waits = Table(
    "cont_waits", metadata,
    Column("loop", _id, primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("worker", String(64), primary_key=True),  # salted pseudonym, as in assignments
    Column("round_no", Integer, primary_key=True),  # the round (model version) the loop stopped in
    Column("wait_s", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

TABLES.append(cont_waits)


# == work no answer carries, and the batches a backend published (migration 0009_unpaid_work) ====
# ``unpaid_work``: time a person spent on work that brought no answer and no pay (a Prolific
# submission returned or timed out), reported by the backend (``unpaid_work()``) and recorded
# once per (loop, backend, key: the platform's id of that work); the wage views count it as
# returned work, unpaid overhead like searching and waiting (Hara et al., CHI 2018, count the
# time on returned tasks as unpaid work time). ``published_batches``: each batch the backend put
# out (a Prolific study), its places and, where a rule sized it, the rule and the rate it read.

unpaid_work = Table(
    "unpaid_work", metadata,
    Column("loop", _id, primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("key", _id, primary_key=True),
    Column("worker", String(64), nullable=False),  # salted pseudonym, as in assignments
    Column("round_no", Integer, nullable=False),  # the round of the tasks the work was for
    Column("kind", String(32), nullable=False),  # e.g. returned, timed-out
    Column("seconds", Float, nullable=False),
    Column("recorded_at", Float, nullable=False),
)

published_batches = Table(
    "published_batches", metadata,
    Column("loop", _id, primary_key=True),
    Column("backend", String(100), primary_key=True),
    Column("key", _id, primary_key=True),  # the backend's batch id
    Column("round_no", Integer, nullable=False),  # the earliest round of its tasks
    Column("external_id", _id),  # e.g. the Prolific study id
    Column("tasks", Integer, nullable=False),
    Column("places", Integer, nullable=False),
    Column("sizing", Text),  # JSON: the rule that sized it and what it read (rate, window); None: one batch per round
    Column("recorded_at", Float, nullable=False),
)

TABLES += [unpaid_work, published_batches]
