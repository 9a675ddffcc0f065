"""Group commit: one writer thread stores many requests' events in one transaction.

Requests hand their decoded :class:`~segmint.intake.results.Submission` to
:meth:`GroupCommitter.submit` (or ``await submit_async``) and wait. The writer takes the first
waiting submission, then gathers more for at most ``max_wait`` seconds or until
``max_events`` are collected, commits them all with one :meth:`Intake.commit` (one durable
transaction) and only then answers every waiting request. A 2xx therefore always means
"stored"; durability costs one fsync per group, not per request.

If the commit fails, every request of the group gets the exception; nothing of it was stored.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from segmint.common import wait_for_thread
from segmint.intake.errors import IntakeBusy, IntakeClosed
from segmint.intake.pipeline import Intake
from segmint.intake.results import Submission, SubmitResult

_Item = tuple[Submission, "Future[SubmitResult]"]


class GroupCommitter:
    """A single writer thread batching submissions into shared transactions.

    Args:
        intake: The pipeline that commits.
        max_wait: The longest a group waits for company after its first request, in seconds.
        max_events: A group closes as soon as it holds this many messages.
    """

    def __init__(
        self,
        intake: Intake,
        *,
        max_wait: float = 0.004,
        max_events: int = 5000,
        max_pending: int = 200_000,
    ) -> None:
        self.intake = intake
        self.max_wait = max_wait
        self.max_events = max_events
        self.max_pending = max_pending
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="segmint-group-commit", daemon=True)
        self._closed = False
        self.gate: Callable[[int], None] | None = None
        """Called with the queue depth before a submission is queued; raises
        :class:`~segmint.intake.errors.IntakeBusy` to refuse it (real time is too far behind)."""
        self.commits = 0
        self.commit_seconds = 0.0
        """Time spent in commits so far (what ``/metrics`` reports as commit time)."""
        self._thread.start()

    @property
    def pending(self) -> int:
        """Messages queued and not yet committed (the intake queue depth)."""
        return self._pending

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (no more submissions are taken)."""
        return self._closed

    def submit(self, submission: Submission) -> Future[SubmitResult]:
        """Queue ``submission``; the future resolves once it is durably stored.

        Raises:
            IntakeClosed: After :meth:`close`.
            IntakeBusy: When ``max_pending`` messages already wait, or the gate refuses
                (clients should retry).
        """
        if self._closed:
            raise IntakeClosed("the intake writer is stopped")
        if self.gate is not None:
            self.gate(self._pending)
        with self._pending_lock:
            if self._pending and self._pending + len(submission.messages) > self.max_pending:
                raise IntakeBusy(f"{self._pending} messages are waiting to be stored")
            self._pending += len(submission.messages)
        future: Future[SubmitResult] = Future()
        self._queue.put((submission, future))
        return future

    async def submit_async(self, submission: Submission) -> SubmitResult:
        """Queue ``submission`` and wait, without blocking the event loop, until stored."""
        return await asyncio.wrap_future(self.submit(submission))

    def close(self) -> None:
        """Commit what is queued, then stop the writer thread (waiting as long as that takes)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        wait_for_thread(self._thread, "the events queued for storage to be committed")

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, stop = self._gather(first)
            self._commit(group)
            if stop:
                return

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        group = [first]
        count = len(first[0].messages)
        deadline = time.monotonic() + self.max_wait
        while count < self.max_events:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                return group, True
            group.append(item)
            count += len(item[0].messages)
        return group, False

    def _commit(self, group: list[_Item]) -> None:
        subs = [sub for sub, _ in group]
        started = time.perf_counter()
        try:
            results = self.intake.commit(subs, notify=False, events=self.intake.has_listeners)
        except BaseException as exc:  # every waiting request learns of the failure
            for _, future in group:
                future.set_exception(exc)
            return
        finally:
            with self._pending_lock:
                self._pending -= sum(len(sub.messages) for sub in subs)
            self.commit_seconds += time.perf_counter() - started
        self.commits += 1
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)
        self.intake.notify(results)
