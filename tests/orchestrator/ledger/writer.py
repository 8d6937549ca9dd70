"""A ledger writer for the crash tests: records N batches of answers, rejections with withheld
pay and bonuses, always with the same keys, so running it again resumes (idempotently)."""

import sys

from clicloop.orchestrator.ledger import Ledger
from clicloop.orchestrator.types import Answer, Task


def main(url: str, batches: int, loop: str = "crash") -> None:
    with Ledger(url) as ledger:
        ledger.begin_loop(loop, "h", "{}", 0)
        print("ready", flush=True)
        for b in range(batches):
            tasks = [Task(f"{loop}/{b}/item{i}/0", loop, b, f"item{b}-{i}", 0, "Sort tickets by topic.", ("a", "b")) for i in range(50)]
            ledger.record_tasks(tasks, "sim")
            ledger.record_answers(loop, "sim", [
                (t, Answer(t.key, f"w{i % 7}", "a", active_s=3.0, reward=0.05, fee=0.01, currency="EUR", search_s=1.0,
                           qualification_s=30.0), "submitted", None)
                for i, t in enumerate(tasks)
            ])
            ledger.review(tasks[0].key, accept=False, reason="off-topic answer", withhold_pay=True)
            ledger.pay(f"{loop}/bonus/{b}", loop, b, "sim", ledger.pseudonym("sim", "w1"), "bonus", 0.10, "EUR", reason="fast")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
