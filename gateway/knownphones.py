"""Which phones logged in here lately: a fixed-size Bloom filter, in Redis bitmaps or this process's memory.

A successful SMS or password login marks its phone; POST /auth/sms-codes asks whether the phone is
marked, and a marked ("known") phone's codes are held to looser caps (gateway/routes/auth.py). One
key or counter bucket per phone would grow with the shoppers (about 250 bytes of Redis each, toward the
maxmemory past which Redis refuses every write: session marks and rate-limit windows too), so the
marks live in one bitmap per 30-day period instead, whatever the number of phones.

Sizes: each period's bitmap holds 2^24 bits (2 MiB) and a phone sets K=3 of them, at positions taken
from an HMAC of the phone under the rate limiter's key (GATEWAY_RATE_LIMIT_SECRET), so no phone, nor
an easily reversed plain hash of one, sits in Redis. A phone is known when its three bits are set in
the current period or one of the two before it: a login is remembered for 60 to 90 days. At most
three bitmaps exist at once (each expires when its period has been out of reach a while): 6 MiB of
bits, which Redis holds in at most 9 MiB (it grows a string by up to 1 MiB more than it needs), or
6 MiB of each gateway worker's memory while Redis is unreachable or not configured.

False positives: with n phones logged in during a period, a phone that did not is taken for known in
that period with probability (1 - e^(-3n / 2^24))^3: at 1,000,000 phones a period about 0.44%, so
about 1.3% over the three periods checked (0.06% and 0.2% at 500,000). A false positive only moves
that phone's codes to the known phones' per-address caps and the whole budget; it opens no account.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable

import redis

from gateway import ratelimit
from gateway.metrics import RATE_LIMIT_STORE_FALLBACKS
from gateway.redisstore import RedisStore, RedisUnavailable

PERIOD_SECONDS = 30 * ratelimit.DAY
PERIODS = 3  # the current period and the two before it
BITS = 2 ** 24  # per period: 2 MiB
HASHES = 3
KEY_PREFIX = "mall:knownphones:"  # + the period number (days since the epoch // 30)


class KnownPhones:
    """The phones that logged in during the last 60 to 90 days, up to a false positive (see the module)."""

    def __init__(self, key: bytes, store: RedisStore | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.key = key  # the rate limiter's HMAC key: replicas sharing Redis share it
        self.store = store
        self.clock = clock or (lambda: ratelimit.clock())  # looked up per call, so tests can hold it still
        self.memory = MemoryBits()  # without Redis, or while it does not answer

    def positions(self, phone: str) -> tuple[int, ...]:
        digest = hmac.new(self.key, b"known-phone\x1f" + phone.encode(), hashlib.sha256).digest()
        return tuple(int.from_bytes(digest[4 * i:4 * i + 4], "big") % BITS for i in range(HASHES))

    def remember(self, phone: str) -> None:
        """Mark `phone` in the current period."""
        period, positions = self._period(), self.positions(phone)
        if self.store is not None:
            try:
                self.store.call(lambda client: _set_bits(client, period, positions))
                return
            except RedisUnavailable:
                RATE_LIMIT_STORE_FALLBACKS.inc()
        self.memory.set(period, positions)

    def known(self, phone: str) -> bool:
        """Whether `phone` was marked in the current period or the two before it."""
        period, positions = self._period(), self.positions(phone)
        periods = range(period - PERIODS + 1, period + 1)
        if self.store is not None:
            try:
                return self.store.call(lambda client: _any_period_has(client, periods, positions))
            except RedisUnavailable:
                RATE_LIMIT_STORE_FALLBACKS.inc()
        return self.memory.any_has(periods, positions)

    def _period(self) -> int:
        return int(self.clock() // PERIOD_SECONDS)


def _set_bits(client: redis.Redis, period: int, positions: tuple[int, ...]) -> None:
    pipe = client.pipeline(transaction=False)
    for position in positions:
        pipe.setbit(f"{KEY_PREFIX}{period}", position, 1)
    # Kept until the period is out of reach (plus a day for clocks that disagree).
    pipe.expireat(f"{KEY_PREFIX}{period}", (period + PERIODS) * PERIOD_SECONDS + ratelimit.DAY)
    pipe.execute()


def _any_period_has(client: redis.Redis, periods: range, positions: tuple[int, ...]) -> bool:
    pipe = client.pipeline(transaction=False)
    for period in periods:
        for position in positions:
            pipe.getbit(f"{KEY_PREFIX}{period}", position)
    bits = pipe.execute()
    return any(all(bits[i:i + HASHES]) for i in range(0, len(bits), HASHES))


class MemoryBits:
    """The same bitmaps in this process: at most PERIODS bytearrays of BITS / 8 bytes, made when first written."""

    def __init__(self) -> None:
        self.periods: dict[int, bytearray] = {}
        self._lock = threading.Lock()

    def set(self, period: int, positions: tuple[int, ...]) -> None:
        with self._lock:
            bits = self.periods.get(period)
            if bits is None:
                bits = self.periods[period] = bytearray(BITS // 8)
                for old in [p for p in self.periods if p <= period - PERIODS]:
                    del self.periods[old]
            for position in positions:
                bits[position >> 3] |= 1 << (position & 7)

    def any_has(self, periods: range, positions: tuple[int, ...]) -> bool:
        with self._lock:
            held = [self.periods.get(period) for period in periods]
        return any(bits is not None and all(bits[p >> 3] & (1 << (p & 7)) for p in positions) for bits in held)
