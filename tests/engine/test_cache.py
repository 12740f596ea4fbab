"""The process-wide caches are LRU-bounded by entries and by approximate bytes; an evicted instance still
works (it is read from the database again)."""

from __future__ import annotations

import pytest

from engine import deploy as deploy_mod
from engine import inbox, limits, lru, runtime
from engine.config import Settings


@pytest.fixture
def bounds():
    """Set cache bounds for one test; the defaults come back afterwards."""

    def _set(**values):
        limits.configure(Settings(**values))

    yield _set
    limits.configure(Settings())


def test_least_recently_used_goes_first_by_entries():
    cache = lru.BoundedCache("t", max_entries=2, byte_share=0.0, sizeof=lambda v: 1)
    cache.resize(max_entries=2, max_bytes=100)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # a is now the most recently used
    cache["c"] = 3
    assert "b" not in cache and cache.get("a") == 1 and cache.get("c") == 3
    assert cache.evictions == 1


def test_bytes_bound_evicts_and_a_value_larger_than_the_cache_is_not_kept():
    cache = lru.BoundedCache("t", max_entries=100, byte_share=0.0, sizeof=len)
    cache.resize(max_entries=100, max_bytes=10)
    cache["a"], cache["b"] = "xxxx", "yyyy"
    cache["c"] = "zzzz"  # 12 bytes > 10: a goes
    assert "a" not in cache and cache.bytes == 8
    cache["big"] = "x" * 11
    assert "big" not in cache and cache.bytes == 8
    assert cache.pop("b") == "yyyy" and cache.bytes == 4
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0


def _start(sessions, count):
    ids = []
    for _ in range(count):
        with sessions.begin() as s:
            ids.append(runtime.start_instance(s, "loop", by="t").id)
    return ids


def _key(sessions, instance_id):
    with sessions.begin() as s:
        return runtime._cache_key(s, instance_id)


def _complete(sessions, instance_id):
    with sessions.begin() as s:
        [task] = inbox.tasks(s, instance_id=instance_id)
        runtime.complete_task(s, task.id, {"more": True}, by="t")
    with sessions.begin() as s:
        return len(inbox.tasks(s, instance_id=instance_id))


def test_instance_cache_bounded_by_entries_and_an_evicted_instance_still_works(sessions, deploy, bounds):
    bounds(cache_instances=2)
    deploy("loop.bpmn")
    first, second, third = _start(sessions, 3)
    assert _key(sessions, first) not in runtime._cache
    assert _key(sessions, second) in runtime._cache and _key(sessions, third) in runtime._cache
    assert _complete(sessions, first) == 1  # loaded from the database, completed, waiting again
    assert _key(sessions, first) in runtime._cache and len(runtime._cache) == 2


def test_instance_cache_bounded_by_bytes(sessions, deploy, bounds):
    deploy("loop.bpmn")
    [probe] = _start(sessions, 1)
    one = runtime._cache.bytes
    assert one > 0
    runtime.forget_cache()
    bounds(cache_mb=(one * 1.5) / 0.7 / 1024 / 1024)  # room for one held instance, not two
    first, second = _start(sessions, 2)
    assert _key(sessions, first) not in runtime._cache and _key(sessions, second) in runtime._cache
    assert runtime._cache.bytes <= runtime._cache.max_bytes
    assert _complete(sessions, first) == 1
    assert _complete(sessions, probe) == 1


def test_deploy_caches_are_bounded(sessions, deploy, bounds):
    bounds(cache_mb=0.001)  # a few hundred bytes each: nothing fits, everything is read again
    deploy("loop.bpmn")
    [instance_id] = _start(sessions, 1)
    assert len(deploy_mod._bundles) == 0 and len(deploy_mod._files_by_deployment) == 0
    assert _complete(sessions, instance_id) == 1
