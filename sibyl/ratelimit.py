"""The one rate limiter: per-key moving windows (the `limits` library) for API clients, operator logins and
Telegram chats alike; memory:// or a shared redis:// storage."""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter


class RateLimited(Exception):
    """The client sent more requests than the configured limit allows."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(limit)
        self.retry_after = retry_after
        self.limit = limit


class RateLimiter:
    """`check(key)` counts one request for `key` or raises RateLimited; an empty spec means no limit.

    A refused request is not counted, so a client that keeps trying is let in again as soon as
    its window has room.
    """

    def __init__(self, spec: str, storage_uri: str = "memory://", namespace: str = "sibyl-api") -> None:
        self.items: list[RateLimitItem] = parse_many(spec) if spec.strip() else []
        self.namespace = namespace
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri)) if self.items else None

    def check(self, key: str) -> None:
        if self.limiter is None:
            return
        for item in self.items:
            if not self.limiter.test(item, self.namespace, key):
                reset_at, _ = self.limiter.get_window_stats(item, self.namespace, key)
                raise RateLimited(max(1, math.ceil(reset_at - time.time())), str(item))
        for item in self.items:
            self.limiter.hit(item, self.namespace, key)

    def allow(self, key: str) -> bool:
        """check() as a yes/no (the bot answers a refused question with a notice, not an error)."""
        try:
            self.check(key)
        except RateLimited:
            return False
        return True


class Notices:
    """At most one 'slow down' notice per key and window (default a minute), so a refusal is not spammed."""

    def __init__(self, spec: str = "1/minute", namespace: str = "sibyl-notice") -> None:
        self.item = parse(spec)
        self.namespace = namespace
        self.limiter = MovingWindowRateLimiter(storage_from_string("memory://"))

    def should_warn(self, key: str) -> bool:
        return self.limiter.hit(self.item, self.namespace, key)
