"""Reviewing and paying Prolific submissions: approve, reject with a reason, bonuses and the
adjustment payments that top a study up when its median time beat the estimate.

A mixin of :class:`~clicloop.backends.prolific.ProlificBackend` (it uses the backend's ``api_``,
``studies_``, ``submission_of_``, ``payments_journal``, ``rate_`` and ``currency``). Amounts are exact
``Decimal`` in the study currency, in whole cents as Prolific pays them: a bonus given with finer
precision is rounded up to the cent (never paying less than asked), and an adjustment is a whole
number of cents by construction. Paying is not idempotent at Prolific: every payment takes a
``key`` (e.g. the ledger's pay-event id; adjustments make theirs) and is written to the backend's
payment journal (``params.payments_journal``, :mod:`clicloop.backends.prolific_journal`) before
the pay call and after it; a key the journal holds is refused, in this process or any later one.
Paying without a journal is refused.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from clicloop.backends.prolific_client import ANSWERED, Payment, ProlificError, epoch as _epoch, readable_submission, reward_cents
from clicloop.backends.prolific_journal import PaymentJournal, PaymentRefused
from clicloop.orchestrator.ledger import money

log = logging.getLogger("clicloop.prolific")

REJECTION_CATEGORIES = ("TOO_QUICKLY", "TOO_SLOWLY", "FAILED_INSTRUCTIONS", "INCOMP_LONGITUDINAL", "FAILED_CHECK",
                        "LOW_EFFORT", "MALINGERING", "NO_CODE", "BAD_CODE", "NO_DATA", "UNSUPP_DEVICE", "OTHER")
APPEAL_NOTE = (" If you think this is wrong, reply to this message through Prolific: we read every appeal and "
               "reverse the decision when we made a mistake.")


class RejectionReasonRequired(ProlificError):
    """A rejection without a reason: every rejection must tell the participant why."""


class PaymentsInterrupted(ProlificError):
    """A run of payments stopped part way; ``payments`` holds those made before it stopped."""

    def __init__(self, message: str, payments: list[Payment]):
        super().__init__(message)
        self.payments = payments


def bonus_amount(amount: Decimal | int | str | float) -> Decimal:
    """A bonus as Prolific pays it: exact, positive, rounded up to the cent (a float is read by
    its shortest repr, so 0.1 is 0.10); a :class:`ProlificError` naming the amount otherwise."""
    try:
        exact = money.parse(amount, "prolific: a bonus")
    except ValueError as e:
        raise ProlificError(str(e)) from e
    if not exact > 0:
        raise ProlificError(f"prolific: a bonus must be positive, not {amount!r}")
    return money.ceil_cents(exact)


class ProlificPayments:
    """Review and pay (see the module docstring); each method returns what it did."""

    def review(self, assignment: str, accept: bool, reason: str | None = None, category: str = "OTHER") -> dict[str, Any]:
        """Approve or reject one submission (``assignment``: a task key or a submission id).

        Rejecting needs a ``reason`` (sent to the participant with how to appeal; Prolific needs
        at least 100 characters) and a Prolific ``category``. Repeating a review is harmless.
        """
        submission = self.submission_of_.get(assignment, (assignment, "", ""))[0]
        if accept:
            return self.api_.request("POST", f"/api/v1/submissions/{submission}/transition/", body={"action": "APPROVE"})
        if reason is None or not reason.strip():
            raise RejectionReasonRequired(f"prolific: rejecting {assignment!r} needs a reason the participant can read")
        if category not in REJECTION_CATEGORIES:
            raise ProlificError(f"prolific: rejection category must be one of {', '.join(REJECTION_CATEGORIES)}")
        message = reason.strip() + APPEAL_NOTE
        return self.api_.request("POST", f"/api/v1/submissions/{submission}/transition/",
                                 body={"action": "REJECT", "message": message, "rejection_category": category})

    def approve_all(self, assignments: Iterable[str]) -> list[str]:
        """Approve many submissions (task keys or submission ids) with the bulk endpoint."""
        ids = sorted({self.submission_of_.get(a, (a, "", ""))[0] for a in assignments})
        for start in range(0, len(ids), 1000):
            self.api_.request("POST", "/api/v1/submissions/bulk-approve/", body={"submission_ids": ids[start:start + 1000]})
        return ids

    def pay_bonus(self, worker: str, amount: Decimal | int | str | float, reason: str, *, key: str | None = None,
                  study_id: str | None = None, kind: str = "bonus") -> Payment:
        """Pay ``amount`` (study currency, exact; rounded up to the cent) to participant ``worker``
        and message them the reason.

        ``key`` names the payment once and for all (Prolific's pay call is not idempotent): the
        journal records it before the pay call, and a key it holds is refused. ``study_id``
        defaults to the last study the participant submitted to. A message that fails after the
        payment is logged, not raised: the payment stands.
        """
        if not reason or not reason.strip():
            raise ProlificError("prolific: a bonus needs a reason the participant can read")
        if not key:
            raise ProlificError("prolific: a payment needs a key (e.g. the ledger's pay-event id), so that it is made once")
        cents = bonus_amount(amount)
        journal = self._journal()
        refusal = journal.refusal(key)
        if refusal:
            raise PaymentRefused(refusal)
        study_id = study_id or next((s for _, p, s in reversed(list(self.submission_of_.values())) if p == worker), None)
        if study_id is None:
            raise ProlificError(f"prolific: participant {worker!r} has no submission we know of; pass study_id")
        setup = self.api_.request("POST", "/api/v1/submissions/bonus-payments/",
                                  body={"study_id": study_id, "csv_bonuses": f"{worker},{cents}\n"})
        bonus_id = str(setup["id"])
        journal.claim(key, bonus_id=bonus_id, participant=worker, study=study_id, amount=str(cents), currency=self.currency)
        try:
            self.api_.request("POST", f"/api/v1/bulk-bonus-payments/{bonus_id}/pay/", safe_to_repeat=False)
        except ProlificError as e:
            if e.status is not None and 400 <= e.status < 500:  # refused (e.g. the balance): no money moved
                journal.failed(key, bonus_id)
            raise
        journal.paid(key, bonus_id)
        try:
            self.api_.request("POST", "/api/v1/messages/", safe_to_repeat=False,
                              body={"recipient_id": worker, "study_id": study_id, "body": reason.strip()})
        except ProlificError as e:
            log.warning("prolific: paid %s %s to %s (bulk bonus %s) but could not message them why: %s",
                        f"{cents:.2f}", self.currency, worker, bonus_id, e)
        return Payment(worker, study_id, cents, self.currency, reason.strip(), bonus_id, kind)

    def _journal(self) -> PaymentJournal:
        if self.payments_journal is None:
            raise ProlificError("prolific: paying needs params.payments_journal, a file where each payment is written "
                                "before it is made (Prolific's pay call is not idempotent: without it a resumed or second "
                                "process would pay the same people again)")
        if getattr(self, "journal_", None) is None:
            self.journal_ = PaymentJournal(self.payments_journal).open()
        return self.journal_

    def adjustment_payments(self, *, dry_run: bool = False) -> list[Payment]:
        """Top up every answered submission of a study whose median time beat its estimate.

        Prolific checks pay against the median completion time; when the median shows the
        reward was under ``reward_per_hour``, each participant is paid the difference once.
        """
        payments = []
        for study in sorted(self.studies_.values(), key=lambda s: s.id):
            subs = [s for s in self.api_.paged("/api/v1/submissions/", {"study": study.id})
                    if readable_submission(s, study.id, self.unreadable_) and s["status"] in ANSWERED]
            times = [e - b for s in subs if (b := _epoch(s.get("started_at"))) is not None
                     and (e := _epoch(s.get("completed_at"))) is not None]
            if not times:
                continue
            median_s = statistics.median(times)
            owed = reward_cents(self.rate_, median_s / 60.0) - study.reward_cents
            if owed <= 0:
                continue
            amount = Decimal(owed).scaleb(-2)  # whole cents, exact
            reason = (f"Adjustment payment: this study took a median of {median_s / 60:.1f} minutes, longer than we "
                      f"estimated, so we top your reward up to {self.rate_:.2f} {self.currency} per hour.")
            for sub in sorted(subs, key=lambda s: str(s.get("id"))):
                pid = str(sub.get("participant_id") or sub.get("participant"))
                key = f"adjustment:{study.id}:{pid}"
                refusal = self._journal().refusal(key)
                if refusal:
                    if "never confirmed" in refusal:
                        log.warning("%s", refusal)  # owed, and not paid again until someone checks
                    continue
                if dry_run:
                    payments.append(Payment(pid, study.id, amount, self.currency, reason, "", "adjustment"))
                    continue
                try:
                    payments.append(self.pay_bonus(pid, amount, reason, study_id=study.id, key=key, kind="adjustment"))
                except PaymentRefused as e:  # another process paid it since this one read the journal
                    log.info("%s", e)
                except ProlificError as e:
                    raise PaymentsInterrupted(f"prolific: adjustment payments stopped at {key!r} after {len(payments)} "
                                              f"made (in .payments; the journal holds them): {e}", payments) from e
        return payments
