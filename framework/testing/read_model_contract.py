"""The contract every ``ReadModelStore`` passes: subclass ``ReadModelStoreContract``
and provide a ``read_models`` fixture."""

from __future__ import annotations

import pytest

from framework.projections.errors import UnknownProjectionError, UnknownTableError
from framework.projections.ports import ParkedEvent, ProjectionFailure, ReadModelStore

TABLES = ("docs", "other")


def parked(offset: int, stream: str = "s") -> ParkedEvent:
    return ParkedEvent(
        partition=0,
        offset=offset,
        stream_id=stream,
        name="t.Happened",
        error="ValueError('boom')",
        attempts=3,
        parked_at_ms=1,
    )


class ReadModelStoreContract:
    """Behaviour projections and queries rely on from a read-model store."""

    @pytest.fixture
    def ready(self, read_models: ReadModelStore) -> ReadModelStore:
        read_models.ensure("proj", 1, TABLES)
        return read_models

    def test_a_new_projection_starts_at_generation_one_with_no_checkpoints(
        self, read_models: ReadModelStore
    ) -> None:
        state = read_models.ensure("proj", 3, TABLES)
        assert (state.version, state.generation, state.building) == (3, 1, None)
        assert read_models.checkpoints("proj", 1) == {}
        assert read_models.table("proj", "docs").count() == 0
        assert read_models.ensure("proj", 4, TABLES).version == 3

    def test_documents_and_checkpoints_commit_together(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("a", {"n": 1})
            tx.table("docs").put("b", [1, 2])
            assert tx.table("docs").get("a") == {"n": 1}
            tx.advance(0, 7)
            tx.advance(2, 3)
        assert ready.table("proj", "docs").get("a") == {"n": 1}
        assert list(ready.table("proj", "docs").items()) == [
            ("a", {"n": 1}),
            ("b", [1, 2]),
        ]
        assert ready.checkpoints("proj", 1) == {0: 7, 2: 3}

    def test_a_failed_transaction_changes_nothing(self, ready: ReadModelStore) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("a", 1)
            tx.advance(0, 1)

        def fail() -> None:
            with ready.transaction("proj", 1) as tx:
                tx.table("docs").put("a", 2)
                tx.table("docs").delete("a")
                tx.table("other").put("x", 1)
                tx.advance(0, 9)
                tx.park(parked(5))
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            fail()
        assert ready.table("proj", "docs").get("a") == 1
        assert ready.table("proj", "other").get("x") is None
        assert ready.checkpoints("proj", 1) == {0: 1}
        assert ready.parked("proj", 1) == []

    def test_deletes_and_rewrites_within_a_transaction(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            docs = tx.table("docs")
            docs.put("a", 1)
            docs.delete("a")
            assert docs.get("a") is None
            docs.put("b", 1)
            docs.put("b", 2)
            assert docs.count() == 1
        assert ready.table("proj", "docs").get("b") == 2
        assert ready.table("proj", "docs").get("a") is None

    def test_a_document_read_from_a_query_is_a_copy(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("a", {"n": [1]})
        got = ready.table("proj", "docs").get("a")
        assert got is not None
        got["n"].append(2)
        assert ready.table("proj", "docs").get("a") == {"n": [1]}

    def test_a_transaction_stores_documents_as_they_were_when_put(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            docs = tx.table("docs")
            document = {"n": 1}
            docs.put("a", document)
            document["n"] = 99  # changed after put: not stored
            read = docs.get("a")
            assert read == {"n": 1}
            read["n"] = 50  # changed without put: not stored either
            assert docs.get("a") == {"n": 1}
        assert ready.table("proj", "docs").get("a") == {"n": 1}

    def test_a_rebuild_writes_a_new_generation_that_replaces_the_old_at_once(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("old", 1)
            tx.advance(0, 10)
        building = ready.begin_rebuild("proj", TABLES)
        assert building == 2
        assert ready.begin_rebuild("proj", TABLES) == 2  # resumable
        with ready.transaction("proj", building) as tx:
            tx.table("docs").put("new", 1)
            tx.advance(0, 4)
        assert ready.table("proj", "docs").get("old") == 1
        assert ready.table("proj", "docs").get("new") is None
        state = ready.state("proj")
        assert state is not None
        assert (state.generation, state.building) == (1, 2)
        ready.finish_rebuild("proj", building, 2)
        assert ready.table("proj", "docs").get("new") == 1
        assert ready.table("proj", "docs").get("old") is None
        state = ready.state("proj")
        assert state is not None
        assert (state.version, state.generation, state.building) == (2, 2, None)
        assert ready.checkpoints("proj", 2) == {0: 4}
        assert ready.checkpoints("proj", 1) == {}

    def test_reset_empties_documents_checkpoints_and_dead_letters(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("a", 1)
            tx.advance(1, 5)
            tx.park(parked(3))
        ready.reset("proj", TABLES, 5)
        assert ready.table("proj", "docs").count() == 0
        assert ready.checkpoints("proj", 1) == {}
        assert ready.parked("proj", 1) == []
        state = ready.state("proj")
        assert state is not None
        assert state.version == 5

    def test_parked_events_are_listed_in_order_and_can_be_removed(
        self, ready: ReadModelStore
    ) -> None:
        ready.park("proj", 1, parked(9))
        with ready.transaction("proj", 1) as tx:
            tx.park(parked(4, "t"))
        assert [(p.offset, p.stream_id) for p in ready.parked("proj", 1)] == [
            (4, "t"),
            (9, "s"),
        ]
        with ready.transaction("proj", 1) as tx:
            tx.unpark(0, 4)
        assert [p.offset for p in ready.parked("proj", 1)] == [9]
        ready.unpark("proj", 1, 0, 9)
        assert ready.parked("proj", 1) == []

    # -- failures ---------------------------------------------------------------

    def test_a_recorded_failure_is_listed_until_its_partition_moves_on(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.advance(0, 3)
        ready.record_failure("proj", 1, failure(partition=0, offset=4))
        ready.record_failure("proj", 1, failure(partition=2, offset=0))
        assert [(f.partition, f.offset) for f in ready.failures("proj", 1)] == [
            (0, 4),
            (2, 0),
        ]
        assert ready.failures("proj", 1)[0] == failure(partition=0, offset=4)
        # Recording a failure moves no checkpoint, nor invents one.
        assert ready.checkpoints("proj", 1) == {0: 3}
        with ready.transaction("proj", 1) as tx:
            assert tx.checkpoint(0) == 3
            assert tx.checkpoint(2) == -1
        # Another projection does not see them.
        ready.ensure("other", 1, TABLES)
        assert ready.failures("other", 1) == []
        # Applying the event (after a fix) clears its partition's failure only.
        with ready.transaction("proj", 1) as tx:
            tx.advance(0, 4)
        assert [f.partition for f in ready.failures("proj", 1)] == [2]
        with ready.transaction("proj", 1) as tx:
            tx.advance(2, 0)
        assert ready.failures("proj", 1) == []
        assert ready.checkpoints("proj", 1) == {0: 4, 2: 0}

    def test_a_failed_transaction_keeps_the_failure(
        self, ready: ReadModelStore
    ) -> None:
        ready.record_failure("proj", 1, failure(partition=0, offset=0))

        def fail() -> None:
            with ready.transaction("proj", 1) as tx:
                tx.advance(0, 0)
                raise RuntimeError("handler failed again")

        with pytest.raises(RuntimeError):
            fail()
        assert [f.offset for f in ready.failures("proj", 1)] == [0]

    def test_a_failure_behind_its_checkpoint_is_not_listed(
        self, ready: ReadModelStore
    ) -> None:
        """A member that lost a race records a failure on an event that another
        member applied meanwhile: that is no failure of the projection."""
        with ready.transaction("proj", 1) as tx:
            tx.advance(0, 5)
        ready.record_failure("proj", 1, failure(partition=0, offset=5))
        assert ready.failures("proj", 1) == []
        ready.record_failure("proj", 1, failure(partition=0, offset=6))
        assert [f.offset for f in ready.failures("proj", 1)] == [6]

    def test_a_new_failure_on_a_partition_replaces_the_old(
        self, ready: ReadModelStore
    ) -> None:
        ready.record_failure("proj", 1, failure(offset=2, error="ValueError('a')"))
        ready.record_failure("proj", 1, failure(offset=2, error="ValueError('b')"))
        assert [f.error for f in ready.failures("proj", 1)] == ["ValueError('b')"]

    def test_reset_and_rebuild_clear_failures(self, ready: ReadModelStore) -> None:
        ready.record_failure("proj", 1, failure(offset=2))
        ready.reset("proj", TABLES, 1)
        assert ready.failures("proj", 1) == []
        ready.record_failure("proj", 1, failure(offset=0))
        building = ready.begin_rebuild("proj", TABLES)
        ready.record_failure("proj", building, failure(offset=7))
        assert [f.offset for f in ready.failures("proj", building)] == [7]
        with ready.transaction("proj", building) as tx:
            tx.advance(0, 9)
        ready.finish_rebuild("proj", building, 1)
        assert ready.failures("proj", building) == []
        assert ready.failures("proj", 1) == []

    # -- names ------------------------------------------------------------------

    def test_an_undeclared_table_is_an_error_naming_the_declared_ones(
        self, ready: ReadModelStore
    ) -> None:
        with ready.transaction("proj", 1) as tx:
            tx.table("docs").put("a", 1)
        assert ready.table("proj", "docs").get("missing") is None
        with pytest.raises(UnknownTableError) as info:
            ready.table("proj", "dosc").get("a")
        assert (info.value.projection, info.value.table) == ("proj", "dosc")
        assert info.value.known == TABLES
        assert "docs, other" in str(info.value)

    def test_an_unknown_projection_is_an_error_naming_the_known_ones(
        self, ready: ReadModelStore
    ) -> None:
        ready.ensure("second", 1, TABLES)
        assert ready.projection_names() == ["proj", "second"]
        with pytest.raises(UnknownProjectionError) as info:
            ready.table("porj", "docs").get("a")
        assert info.value.name == "porj"
        assert info.value.known == ("proj", "second")
        assert isinstance(info.value, LookupError)


def failure(
    *, partition: int = 0, offset: int = 0, error: str = "ValueError('boom')"
) -> ProjectionFailure:
    return ProjectionFailure(
        projection="proj",
        topic="events",
        partition=partition,
        offset=offset,
        stream_id="s",
        stream_version=offset + 1,
        event_name="t.Happened",
        error=error,
        attempts=3,
        failed_at_ms=1_700_000_000_000,
    )
