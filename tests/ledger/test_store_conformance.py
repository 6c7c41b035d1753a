"""One conformance suite for every `KeyValueStore` backend, plus LevelDB-only behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import plyvel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.errors import StoreError
from ledger.kv import KeyValueStore
from ledger.store import compute_prefix_end
from ledger.store.leveldb import LevelDBStore
from ledger.store.memory import MemoryStore


@pytest.fixture(params=["memory", "leveldb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[KeyValueStore]:
    backend: KeyValueStore = (
        MemoryStore() if request.param == "memory" else LevelDBStore(tmp_path / "db")
    )
    yield backend
    backend.close()


def fill(store: KeyValueStore, keys: list[bytes]) -> None:
    for key in keys:
        store.put(key, b"v" + key)


def keys_of(items: Iterator[tuple[bytes, bytes]]) -> list[bytes]:
    return [key for key, _ in items]


def model_iterate(
    data: dict[bytes, bytes], prefix: bytes, start: bytes | None, reverse: bool
) -> list[bytes]:
    """A deliberately naive reference for `iterate`."""
    keys = sorted(k for k in data if k.startswith(prefix))
    if reverse:
        return [k for k in reversed(keys) if start is None or k <= start]
    return [k for k in keys if start is None or k >= start]


class TestStoreConformance:
    def test_basic(self, store: KeyValueStore) -> None:
        store.put(b"a", b"1")
        assert store.get(b"a") == b"1"
        store.put(b"a", b"2")
        assert store.get(b"a") == b"2"
        store.delete(b"a")
        assert store.get(b"a") is None

    def test_get_missing_is_none(self, store: KeyValueStore) -> None:
        assert store.get(b"nothing") is None

    def test_delete_missing_is_noop(self, store: KeyValueStore) -> None:
        store.delete(b"nothing")
        assert store.get(b"nothing") is None

    def test_empty_value(self, store: KeyValueStore) -> None:
        store.put(b"k", b"")
        assert store.get(b"k") == b""
        assert list(store.iterate(b"k")) == [(b"k", b"")]

    def test_iterate_prefix_in_key_order(self, store: KeyValueStore) -> None:
        fill(store, [b"p/b", b"p/a", b"q/a", b"p", b"o/z", b"p/\xff\x00"])
        assert list(store.iterate(b"p/")) == [
            (b"p/a", b"vp/a"),
            (b"p/b", b"vp/b"),
            (b"p/\xff\x00", b"vp/\xff\x00"),
        ]

    def test_iterate_reverse(self, store: KeyValueStore) -> None:
        fill(store, [b"p/b", b"p/a", b"q/a", b"p/c"])
        assert keys_of(store.iterate(b"p/", reverse=True)) == [b"p/c", b"p/b", b"p/a"]

    def test_iterate_start_forward_inclusive(self, store: KeyValueStore) -> None:
        fill(store, [b"p/a", b"p/b", b"p/c"])
        assert keys_of(store.iterate(b"p/", start=b"p/b")) == [b"p/b", b"p/c"]
        assert keys_of(store.iterate(b"p/", start=b"p/bb")) == [b"p/c"]

    def test_iterate_start_reverse_inclusive(self, store: KeyValueStore) -> None:
        fill(store, [b"p/a", b"p/b", b"p/c"])
        assert keys_of(store.iterate(b"p/", start=b"p/b", reverse=True)) == [b"p/b", b"p/a"]
        assert keys_of(store.iterate(b"p/", start=b"p/bb", reverse=True)) == [b"p/b", b"p/a"]

    def test_iterate_start_outside_prefix(self, store: KeyValueStore) -> None:
        fill(store, [b"p/a", b"p/b"])
        assert keys_of(store.iterate(b"p/", start=b"a")) == [b"p/a", b"p/b"]
        assert keys_of(store.iterate(b"p/", start=b"z")) == []
        assert keys_of(store.iterate(b"p/", start=b"z", reverse=True)) == [b"p/b", b"p/a"]
        assert keys_of(store.iterate(b"p/", start=b"a", reverse=True)) == []

    def test_iterate_prefix_of_ff_bytes(self, store: KeyValueStore) -> None:
        fill(store, [b"\xfe", b"\xff", b"\xff\xff", b"\xff\xff\x01"])
        assert keys_of(store.iterate(b"\xff\xff")) == [b"\xff\xff", b"\xff\xff\x01"]
        assert keys_of(store.iterate(b"")) == [b"\xfe", b"\xff", b"\xff\xff", b"\xff\xff\x01"]

    def test_iterate_empty_key(self, store: KeyValueStore) -> None:
        fill(store, [b"", b"a"])
        assert keys_of(store.iterate(b"")) == [b"", b"a"]
        assert keys_of(store.iterate(b"", reverse=True)) == [b"a", b""]
        assert keys_of(store.iterate(b"", start=b"", reverse=True)) == [b""]

    def test_iterate_reverse_at_end_of_keys(self, store: KeyValueStore) -> None:
        fill(store, [b"\x00", b"a", b"a/1", b"a/2"])
        assert keys_of(store.iterate(b"a/", reverse=True)) == [b"a/2", b"a/1"]
        assert keys_of(store.iterate(b"\x00", reverse=True)) == [b"\x00"]
        assert keys_of(store.iterate(b"a/", start=b"a/3", reverse=True)) == [b"a/2", b"a/1"]

    def test_iterate_is_a_snapshot(self, store: KeyValueStore) -> None:
        fill(store, [b"p/a", b"p/b"])
        items = store.iterate(b"p/")
        reversed_items = store.iterate(b"p/", reverse=True)
        store.put(b"p/c", b"new")
        store.delete(b"p/a")
        assert keys_of(items) == [b"p/a", b"p/b"]
        assert keys_of(reversed_items) == [b"p/b", b"p/a"]

    def test_atomic_batch_applies_on_clean_exit(self, store: KeyValueStore) -> None:
        store.put(b"gone", b"x")
        with store.atomic_batch() as batch:
            batch.put(b"a", b"1")
            batch.put(b"b", b"2")
            batch.delete(b"gone")
            assert store.get(b"a") is None
        assert (store.get(b"a"), store.get(b"b"), store.get(b"gone")) == (b"1", b"2", None)

    def test_atomic_batch_keeps_operation_order(self, store: KeyValueStore) -> None:
        with store.atomic_batch() as batch:
            batch.put(b"a", b"1")
            batch.delete(b"a")
            batch.delete(b"b")
            batch.put(b"b", b"2")
        assert (store.get(b"a"), store.get(b"b")) == (None, b"2")

    def test_invalid_batch_raises_writes_nothing(self, store: KeyValueStore) -> None:
        store.put(b"keep", b"x")
        with pytest.raises(RuntimeError), store.atomic_batch() as batch:
            batch.put(b"a", b"1")
            batch.delete(b"keep")
            raise RuntimeError("abort")
        assert (store.get(b"a"), store.get(b"keep")) == (None, b"x")

    def test_invalid_use_after_close(self, store: KeyValueStore) -> None:
        store.close()
        for call in (
            lambda: store.get(b"a"),
            lambda: store.put(b"a", b"1"),
            lambda: store.delete(b"a"),
            lambda: store.iterate(b""),
            lambda: store.atomic_batch().__enter__(),
        ):
            with pytest.raises(StoreError) as info:
                call()
            assert info.value.code == "store_closed"
        store.close()

    @settings(
        max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        ops=st.lists(
            st.tuples(st.booleans(), st.binary(max_size=3), st.binary(max_size=2)), max_size=40
        ),
        prefix=st.binary(max_size=2),
        start=st.none() | st.binary(max_size=3),
        reverse=st.booleans(),
    )
    def test_iterate_matches_model(
        self,
        store: KeyValueStore,
        ops: list[tuple[bool, bytes, bytes]],
        prefix: bytes,
        start: bytes | None,
        reverse: bool,
    ) -> None:
        for key, _ in list(store.iterate(b"")):
            store.delete(key)
        model: dict[bytes, bytes] = {}
        with store.atomic_batch() as batch:
            for is_put, key, value in ops:
                if is_put:
                    batch.put(key, value)
                    model[key] = value
                else:
                    batch.delete(key)
                    model.pop(key, None)
        got = list(store.iterate(prefix, start=start, reverse=reverse))
        expected = model_iterate(model, prefix, start, reverse)
        assert got == [(key, model[key]) for key in expected]


def test_prefix_end() -> None:
    assert compute_prefix_end(b"a/") == b"a0"
    assert compute_prefix_end(b"a\xff") == b"b"
    assert compute_prefix_end(b"\xff\xff") is None
    assert compute_prefix_end(b"") is None


def test_leveldb_persists_across_reopen(tmp_path: Path) -> None:
    first = LevelDBStore(tmp_path / "db")
    with first.atomic_batch() as batch:
        batch.put(b"a", b"1")
    first.close()
    second = LevelDBStore(tmp_path / "db", create_if_missing=False)
    assert second.get(b"a") == b"1"
    second.close()


def _table_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.glob("*.ldb"))


def test_leveldb_tables_are_not_compressed(tmp_path: Path) -> None:
    # 2 MB that Snappy would shrink to a few KB: uncompressed tables keep their size
    store = LevelDBStore(tmp_path / "db")
    with store.atomic_batch() as batch:
        for i in range(2_000):
            batch.put(b"k%06d" % i, b"a" * 1_000)
    store._db.compact_range()
    assert _table_bytes(tmp_path / "db") > 1_900_000
    store.close()


def test_leveldb_reads_tables_an_older_version_compressed(tmp_path: Path) -> None:
    old = plyvel.DB(str(tmp_path / "db"), create_if_missing=True, compression="snappy")
    for i in range(2_000):
        old.put(b"k%06d" % i, b"a" * 1_000)
    old.compact_range()
    old.close()
    assert _table_bytes(tmp_path / "db") < 500_000  # those tables are compressed
    store = LevelDBStore(tmp_path / "db", create_if_missing=False)
    assert store.get(b"k001999") == b"a" * 1_000
    assert len(list(store.iterate(b"k"))) == 2_000
    store.close()


def test_invalid_leveldb_locked(tmp_path: Path) -> None:
    first = LevelDBStore(tmp_path / "db")
    with pytest.raises(StoreError) as info:
        LevelDBStore(tmp_path / "db")
    assert info.value.code == "store_locked"
    first.close()


def test_invalid_leveldb_missing(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        LevelDBStore(tmp_path / "absent", create_if_missing=False)
    assert info.value.code == "store_error"


def test_memory_bulk_batch_keeps_key_order() -> None:
    store = MemoryStore()
    fill(store, [b"k%03d" % i for i in range(0, 100, 2)])
    with store.atomic_batch() as batch:
        for i in range(100):
            batch.put(b"k%03d" % i, b"new")
        for i in range(0, 100, 3):
            batch.delete(b"k%03d" % i)
        batch.put(b"k000", b"back")
    expected = [b"k000"] + [b"k%03d" % i for i in range(100) if i % 3]
    assert keys_of(store.iterate(b"k")) == expected
    assert keys_of(store.iterate(b"k", reverse=True)) == expected[::-1]
