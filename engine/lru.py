"""Bounded process-wide caches: least recently used entries go first, by count and by approximate bytes.

Every module-level cache of the engine is a `BoundedCache` registered here, so `configure(settings)`
(called wherever `limits.configure` is: the web app, every CLI command, the worker) applies
POLKU_CACHE_INSTANCES / POLKU_CACHE_MB to the instance cache and proportionate bounds to the rest.
A cache only saves work: anything evicted is read from the database again.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_MISSING = object()
DEFAULT_INSTANCES = 2000
DEFAULT_MB = 64.0


class BoundedCache(Generic[K, V]):
    """A thread-safe LRU mapping bounded by entries and by the sum of `sizeof(value)` (approximate bytes)."""

    def __init__(self, name: str, *, max_entries: int, byte_share: float, sizeof: Callable[[Any], int] | None = None,
                 entries_setting: bool = False):
        self.name = name
        self.max_entries = max_entries
        self.byte_share = byte_share  # this cache's part of POLKU_CACHE_MB
        self.max_bytes = int(DEFAULT_MB * 1024 * 1024 * byte_share)
        self.entries_setting = entries_setting  # bounded by POLKU_CACHE_INSTANCES (else by `max_entries`)
        self.sizeof = sizeof or sys.getsizeof
        self.bytes = 0
        self.evictions = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()
        _registry.append(self)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def get(self, key: K, default: Any = None) -> Any:
        """Return the value (now the most recently used) or `default`."""
        with self._lock:
            found = self._items.get(key, _MISSING)
            if found is _MISSING:
                return default
            self._items.move_to_end(key)
            return found[0]  # type: ignore[index]

    def __getitem__(self, key: K) -> V:
        found = self.get(key, _MISSING)
        if found is _MISSING:
            raise KeyError(key)
        return found  # type: ignore[no-any-return]

    def pop(self, key: K, default: Any = None) -> Any:
        """Remove and return the value, or return `default`."""
        with self._lock:
            found = self._items.pop(key, _MISSING)
            if found is _MISSING:
                return default
            self.bytes -= found[1]  # type: ignore[index]
            return found[0]  # type: ignore[index]

    def __setitem__(self, key: K, value: V) -> None:
        size = max(1, int(self.sizeof(value)))
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            if size > self.max_bytes or self.max_entries <= 0:
                return  # larger than the whole cache: not kept
            self._items[key] = (value, size)
            self.bytes += size
            while len(self._items) > self.max_entries or self.bytes > self.max_bytes:
                _key, (_value, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
                self.evictions += 1

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self.bytes = 0

    cache_clear = clear  # the name functools.lru_cache uses, so callers clearing "every cache" find these too

    def resize(self, *, max_entries: int, max_bytes: int) -> None:
        """Change the bounds, evicting the least recently used entries that no longer fit."""
        with self._lock:
            self.max_entries, self.max_bytes = max_entries, max_bytes
            while self._items and (len(self._items) > max_entries or self.bytes > max_bytes):
                _key, (_value, dropped) = self._items.popitem(last=False)
                self.bytes -= dropped
                self.evictions += 1


_registry: list[BoundedCache[Any, Any]] = []


def configure(settings: Any) -> None:
    """Apply `cache_instances` and `cache_mb` of `settings` to every registered cache (bytes by its share)."""
    entries = int(getattr(settings, "cache_instances", DEFAULT_INSTANCES))
    total = float(getattr(settings, "cache_mb", DEFAULT_MB)) * 1024 * 1024
    for cache in _registry:
        cache.resize(max_entries=max(0, entries) if cache.entries_setting else cache.max_entries,
                     max_bytes=max(1, int(total * cache.byte_share)))


def caches() -> list[BoundedCache[Any, Any]]:
    """Return every registered cache (benchmarks print their sizes)."""
    return list(_registry)
