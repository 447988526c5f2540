"""store.transaction(): several operations commit together, or not at all."""

from __future__ import annotations

import pytest

from chatkeep import (
    InvalidInputError,
    SessionExistsError,
    SessionFilter,
    SessionNotFoundError,
    Store,
)

from .support import batch, contents, filled, seqs, snapshot, unchanged


class Boom(Exception):
    """Raised by a test to abandon a transaction."""


async def test_a_transaction_commits_everything(store: Store) -> None:
    a = await filled(store, 2)
    doomed = await filled(store, 1)
    async with store.transaction() as tx:
        b = await tx.create_session(id="b", owner="o")
        await tx.append_messages(a.id, batch("x", "y"))
        await tx.append_messages(b.id, batch("first"))
        await tx.update_session(a.id, {"owner": "changed"})
        await tx.pop_message(a.id)
        assert await tx.delete_session(doomed.id) is True
        assert seqs(await tx.get_messages(a.id)) == [1, 2, 3]
        assert (await tx.get_session("b")).message_count == 1
    assert seqs(await store.get_messages(a.id)) == [1, 2, 3]
    assert (await store.get_session(a.id)).owner == "changed"
    assert contents(await store.get_messages("b")) == ["first"]
    with pytest.raises(SessionNotFoundError):
        await store.get_session(doomed.id)


async def test_an_exception_undoes_everything(store: Store) -> None:
    a = await filled(store, 3, max_messages=3)
    gone = await filled(store, 1)
    async with unchanged(store):
        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.create_session(id="created-inside")
                await tx.append_messages("created-inside", batch("lost"))
                await tx.append_messages(a.id, batch("trims", "the", "window"))
                await tx.update_session(a.id, {"metadata": {"k": 1}, "max_messages": 1})
                await tx.clear_messages(a.id)
                await tx.delete_session(gone.id)
                await tx.set_session_lock(a.id, "agent-x")
                raise Boom
    with pytest.raises(SessionNotFoundError):
        await store.get_session("created-inside")
    assert seqs(await store.append_messages(a.id, batch("next"))) == [4]
    assert contents(await store.get_messages(a.id)) == ["m2", "m3", "next"]
    assert (await store.get_session_lock(a.id)) is None


async def test_a_rolled_back_create_frees_the_id(store: Store) -> None:
    with pytest.raises(Boom):
        async with store.transaction() as tx:
            await tx.create_session(id="maybe")
            raise Boom
    assert (await store.create_session(id="maybe")).version == 1


async def test_a_caught_operation_error_keeps_earlier_work(store: Store) -> None:
    a = await filled(store, 1)
    async with store.transaction() as tx:
        await tx.append_messages(a.id, batch("kept"))
        await tx.create_session(id="also-kept")
        with pytest.raises(SessionExistsError):
            await tx.create_session(id="also-kept")
        with pytest.raises(SessionNotFoundError):
            await tx.append_messages("ghost", batch("x"))
        with pytest.raises(InvalidInputError):
            await tx.append_messages(a.id, [batch("fine")[0], "not a message"])  # type: ignore[list-item]
        await tx.append_messages(a.id, batch("after"))
    assert contents(await store.get_messages(a.id)) == ["m1", "kept", "after"]
    assert (await store.get_session("also-kept")).version == 1


async def test_the_store_works_after_a_rollback(store: Store) -> None:
    a = await filled(store, 1)
    for _ in range(3):
        with pytest.raises(Boom):
            async with store.transaction() as tx:
                await tx.append_messages(a.id, batch("x"))
                raise Boom
    assert seqs(await store.append_messages(a.id, batch("y"))) == [2]
    async with store.transaction() as tx:
        await tx.append_messages(a.id, batch("z"))
    assert seqs(await store.get_messages(a.id)) == [1, 2, 3]


async def test_an_empty_transaction(store: Store) -> None:
    await filled(store, 2)
    async with unchanged(store), store.transaction():
        pass


async def test_a_transaction_reads_its_own_writes(store: Store) -> None:
    async with store.transaction() as tx:
        s = await tx.create_session(id="rw", metadata={"k": "v"})
        await tx.append_messages(s.id, batch("one"))
        listed = await tx.list_sessions()
        assert [x.id for x in listed.sessions] == ["rw"]
        assert [h.session.id for h in await tx.search_sessions("one")] == ["rw"]
        assert (await tx.get_session("rw")).message_count == 1


async def test_a_transaction_cannot_be_used_after_it_ends(store: Store) -> None:
    async with store.transaction() as tx:
        await tx.create_session(id="t")
    before = await snapshot(store)
    with pytest.raises(RuntimeError):
        await tx.append_messages("t", batch("late"))
    assert await snapshot(store) == before


async def test_bulk_update_in_a_rolled_back_transaction(store: Store) -> None:
    for i in range(3):
        await store.create_session(id=f"b{i}", owner="o")
    async with unchanged(store):
        with pytest.raises(Boom):
            async with store.transaction() as tx:
                assert await tx.bulk_update(SessionFilter(owner="o"), {"tags": ["x"]}) == 3
                raise Boom
