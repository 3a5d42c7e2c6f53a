"""Splunk HEC indexer acknowledgement: per-channel ack ids, bounded.

A client that sends a channel (a GUID) gets an ``ackId`` with each successful request and later
asks ``/services/collector/ack`` which of its ids are indexed. Keelwatch answers a request only
after its data is durable, so an id is true from the moment it is issued: a channel needs two
numbers (the next id, the time it was last used), never a set of pending ids. Channels idle for
longer than ``idle_expiry_seconds`` are forgotten; past ``max_channels`` the least recently used
one is dropped (its client sees "invalid data channel" and resends: duplicates, never loss).
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_CHANNEL_CHARS = 64  # a GUID in any of its spellings fits; longer input is refused unparsed


def channel_id(value: str) -> str | None:
    """The canonical (lower-case, hyphenated) form of a channel GUID, or None if it is not one."""
    value = value.strip()
    if not value or len(value) > MAX_CHANNEL_CHARS:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


@dataclass(slots=True)
class _Channel:
    next_ack_id: int
    last_used_seconds: float


class AckChannels:
    """Issues ack ids per channel and answers ack queries; lives on the event loop."""

    def __init__(
        self,
        *,
        max_channels: int = 20_000,
        idle_expiry_seconds: float = 600.0,
        max_ids_per_query: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_channels = max_channels
        self.idle_expiry_seconds = idle_expiry_seconds
        self.max_ids_per_query = max_ids_per_query
        self._clock = clock
        self._channels: OrderedDict[str, _Channel] = OrderedDict()  # least recently used first
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._channels)

    def issue(self, channel: str) -> int:
        """The next ack id of ``channel`` (a canonical GUID), creating the channel if needed."""
        now = self._clock()
        self._expire(now)
        state = self._channels.get(channel)
        if state is None:
            while len(self._channels) >= self.max_channels:
                self._channels.popitem(last=False)
                self.evicted += 1
            state = self._channels[channel] = _Channel(0, now)
        else:
            self._channels.move_to_end(channel)
            state.last_used_seconds = now
        ack_id = state.next_ack_id
        state.next_ack_id += 1
        return ack_id

    def query(self, channel: str, ack_ids: Sequence[int]) -> dict[str, bool] | None:
        """Each asked id → whether it was issued on ``channel``; None for an unknown channel."""
        now = self._clock()
        self._expire(now)
        state = self._channels.get(channel)
        if state is None:
            return None
        self._channels.move_to_end(channel)
        state.last_used_seconds = now
        issued = state.next_ack_id
        return {str(ack_id): 0 <= ack_id < issued for ack_id in ack_ids}

    def _expire(self, now: float) -> None:
        cutoff = now - self.idle_expiry_seconds
        while self._channels:
            oldest = next(iter(self._channels.values()))
            if oldest.last_used_seconds >= cutoff:
                break
            self._channels.popitem(last=False)
