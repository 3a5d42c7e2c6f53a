"""The durable hand-off: batches wait here until the store has committed them.

One thread owns all writes. It takes every batch waiting at that moment and commits them
together (group commit), so many small requests cost one transaction and one fsync. A caller's
future resolves only after that commit: acknowledged means durable. A bounded queue turns
overload into an immediate ``Overloaded`` (HTTP 503 with Retry-After) instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass

from keelwatch.alerting.raiser import AlertRaiser
from keelwatch.errors import KeelwatchError
from keelwatch.parsers.base import Batch
from keelwatch.store.base import Store

log = logging.getLogger(__name__)


class Overloaded(KeelwatchError):
    """The write queue is full; the client should retry after ``retry_after_seconds``."""

    retry_after_seconds = 1


@dataclass(slots=True)
class _Pending:
    batch: Batch
    size: int
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class BatchWriter:
    def __init__(
        self,
        store: Store,
        *,
        max_queue_events: int = 500_000,
        max_group_events: int = 200_000,
        raiser: AlertRaiser | None = None,
    ) -> None:
        self.store = store
        self.raiser = raiser
        self.max_queue_events = max_queue_events
        self.max_group_events = max_group_events
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._queued = 0
        self._thread: threading.Thread | None = None

    @property
    def queued_events(self) -> int:
        return self._queued

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="keelwatch-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish what is queued, then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    async def write(self, batch: Batch) -> None:
        """Return once ``batch`` is durable; raise ``Overloaded`` at once if the queue is full."""
        size = len(batch.events) + len(batch.findings) + len(batch.dead_letters)
        if size == 0:
            return
        with self._lock:
            if self._queued and self._queued + size > self.max_queue_events:
                raise Overloaded(f"{self._queued} events are waiting to be written")
            self._queued += size
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(batch, size, future, loop))
        await future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            group: list[_Pending] = [first]  # type: ignore[list-item]
            events = group[0].size
            while events < self.max_group_events:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Pending)
                group.append(item)
                events += item.size
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        merged = Batch()
        for pending in group:
            merged.extend(pending.batch)
        # Detection runs here, in the one writer thread, so its state sees batches in commit
        # order and alerts are committed in the same transaction as the events they cite.
        if self.raiser is not None:
            self.raiser.process(merged)
        try:
            self.store.append(merged)
            outcomes: list[BaseException | None] = [None] * len(group)
        except Exception:
            # One bad batch must not fail its neighbours: retry them one by one.
            log.exception("group commit failed; retrying %d batches one by one", len(group))
            outcomes = [self._commit_one(pending.batch) for pending in group]
            if merged.alerts and self._commit_one(Batch(alerts=merged.alerts)) is not None:
                log.error("could not store %d alerts", len(merged.alerts))
        for pending, error in zip(group, outcomes, strict=True):
            with self._lock:
                self._queued -= pending.size
            pending.loop.call_soon_threadsafe(_settle, pending.future, error)

    def _commit_one(self, batch: Batch) -> BaseException | None:
        try:
            self.store.append(batch)
        except Exception as error:
            return error
        return None


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
