"""The discrete-event crowd's waiting: when no more work is coming, idle workers go home (and come
back with new work), and the waiting no answer carries is settled once when the loop stops.

A mixin of :class:`~clicloop.backends.des.EventCrowd` (it uses the crowd's ``state_``,
``_span`` and ``_save``).
"""

from __future__ import annotations

from clicloop.backends.des_state import _Worker


class Waiting:
    """Sending workers home, calling them back, settling their waiting (see the module docstring)."""

    def no_more_tasks(self) -> None:
        """The requester says no more work is coming (its budget is fully asked): idle workers
        leave now (their waiting up to now stays theirs, reported on settle), busy ones when they
        finish, absent ones do not come back; new tasks call them back."""
        st = self.state_
        if getattr(st, "closed", False):
            return
        st.closed = True
        if not st.queue:
            for worker in st.workers:
                if worker.task is None:
                    self._send_home(worker)
        self._save()

    def _send_home(self, worker: _Worker) -> None:
        if worker.present and worker.idle_since is not None:
            worker.waited_s += self.state_.now - worker.idle_since
        worker.present, worker.idle_since, worker.sent_home, worker.toggle_at = False, None, True, float("inf")

    def _reopen(self) -> None:
        """New work after :meth:`no_more_tasks`: those sent home come back now."""
        st = self.state_
        if not getattr(st, "closed", False):
            return
        st.closed = False
        for w, worker in enumerate(st.workers):
            if getattr(worker, "sent_home", False):
                worker.sent_home, worker.present, worker.idle_since = False, True, st.now
                worker.toggles += 1
                worker.toggle_at = st.now + self._span(w, worker.toggles, True)

    def settle_waits(self, key: str) -> dict[str, float]:
        """The waiting no answer carries yet (worker id -> seconds): each worker's waiting since
        their last answer, up to now, when the loop stops. It is reported once: the workers'
        waiting starts again from zero (a loop that goes on later reports only what came after),
        and asking again with the same ``key`` (a resumed loop stopping again) gives the same
        figures without settling anything twice."""
        st = self.state_
        settled = getattr(st, "settled", None)
        if settled is None:  # a state saved before settle_waits existed
            settled = st.settled = {}
        if key in settled:
            return dict(settled[key])
        out = {}
        for w, worker in enumerate(st.workers):
            if worker.task is not None:
                continue  # their waiting goes on the answer in hand
            seconds = worker.waited_s
            if worker.present and worker.task is None and worker.idle_since is not None:
                seconds += st.now - worker.idle_since
                worker.idle_since = st.now
            worker.waited_s = 0.0
            if seconds > 0:
                out[f"des-{w:04d}"] = round(seconds, 3)
        settled[key] = out
        self._save()
        return dict(out)
