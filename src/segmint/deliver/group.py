"""Group commit for the send ledger: concurrent sends share one durable commit.

Each message needs its claim committed before its SMTP transaction starts; with a commit
costing an fsync, one commit per claim would cap a campaign at the disk's fsync rate. Here
the claims waiting at one moment, and the ``sent`` / ``failed`` marks and hard bounces of
the sends that finished meanwhile, go into one transaction, run on a worker thread so SMTP
traffic flows while the disk syncs. A ``sent`` mark is not awaited: if the process dies
before it is committed, the row stays ``attempting`` and the next run reports it
``uncertain`` (never re-sent), which keeps "nobody twice" at the price of a few more
uncertain rows. A hard bounce is awaited, like a claim: its suppression must not be lost.
"""

from __future__ import annotations

import asyncio

from segmint.deliver.ledger import Bounce, SendLedger


class GroupLedger:
    """Batches claims and marks of one campaign run into shared transactions.

    Args:
        ledger: The ledger the batches are applied to.
    """

    def __init__(self, ledger: SendLedger) -> None:
        self.ledger = ledger
        self._claims: list[tuple[tuple[str, str, str], asyncio.Future[bool]]] = []
        self._sent: list[str] = []
        self._failed: list[tuple[str, str]] = []
        self._bounces: list[tuple[Bounce, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    async def claim(self, profile_id: str, address: str, message_id: str) -> bool:
        """Claim a row; return once the claim is committed (False if it was refused)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._claims.append(((profile_id, address, message_id), future))
        self._kick()
        return await future

    def sent(self, profile_id: str) -> None:
        """Mark a claimed row sent (committed with the next batch)."""
        self._sent.append(profile_id)
        self._kick()

    async def bounced(self, bounce: Bounce) -> None:
        """Record a hard bounce (and its suppression); return once it is committed."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._bounces.append((bounce, future))
        self._kick()
        await future

    def failed(self, profile_id: str, reason: str) -> None:
        """Mark a row failed (committed with the next batch)."""
        self._failed.append((profile_id, reason))
        self._kick()

    async def drain(self) -> None:
        """Wait until every queued claim and mark is committed."""
        while self._task is not None and not self._task.done():
            await self._task
        if self._pending():
            self._kick()
            await self.drain()

    def _pending(self) -> bool:
        return bool(self._claims or self._sent or self._failed or self._bounces)

    def _kick(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending():
            claims, self._claims = self._claims, []
            sent, self._sent = self._sent, []
            failed, self._failed = self._failed, []
            bounces, self._bounces = self._bounces, []
            waiting = [f for _, f in claims] + [f for _, f in bounces]
            try:
                granted = await asyncio.to_thread(
                    self.ledger.apply, [c for c, _ in claims], sent, failed, [b for b, _ in bounces]
                )
            except BaseException as exc:
                for future in waiting:
                    future.set_exception(exc)
                raise
            self.commits += 1
            for future, ok in zip(waiting, [*granted, *(True for _ in bounces)], strict=True):
                future.set_result(ok)
