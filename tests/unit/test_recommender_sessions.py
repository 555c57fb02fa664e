"""Session-kNN, pure: which past sessions match, what they support, and the memory bounds."""

from __future__ import annotations

import math

import pytest

from shopstream_recommender.sessions import SessionIndex

pytestmark = pytest.mark.unit


def index_of(*sessions: tuple[str, ...], max_sessions: int = 100) -> SessionIndex:
    index = SessionIndex(max_sessions, items_per_session=20, sessions_per_item=10)
    for number, items in enumerate(sessions):
        for item in items:
            index.add((f"u{number}", "s"), item, 0.0)
    return index


def similar(index: SessionIndex, *current: str, **kw: int) -> list[tuple[str, float]]:
    weighted = [(item, 1.0) for item in current]
    return index.similar(
        ("me", "s"),
        weighted,
        neighbours=kw.get("neighbours", 10),
        limit=kw.get("limit", 10),
        spread=5.0,
        now=kw.get("now", 0),
        half_life_seconds=10.0,
    )


def test_sessions_sharing_all_current_items_outweigh_those_sharing_one() -> None:
    index = index_of(
        ("tent", "stove", "lamp"),
        ("tent", "stove", "lamp"),
        ("tent", "kayak"),
        ("tent", "kayak"),
        ("tent", "kayak"),
    )
    found = dict(similar(index, "stove", "tent"))
    # Item-to-item evidence from "tent" alone favours kayak (3 sessions against 2); the whole
    # session favours lamp: 2 x 2/sqrt(3) against 3 x 1/sqrt(2).
    assert found["lamp"] > found["kayak"] > 0
    assert max(found.values()) == pytest.approx(1.0)


def test_what_came_after_the_shared_item_counts_more_than_what_came_before() -> None:
    index = index_of(("before", "hub", "after"))
    found = dict(similar(index, "hub"))
    assert found["after"] == pytest.approx(1.0)
    assert found["before"] == pytest.approx(math.exp(-2 / 5.0))
    assert found["hub"] == pytest.approx(math.exp(-1 / 5.0))


def test_the_current_session_is_not_its_own_neighbour_and_unknown_items_find_nothing() -> None:
    index = index_of(("a", "b"))
    index.add(("me", "s"), "a", 0.0)
    index.add(("me", "s"), "mine-only", 0.0)
    assert "mine-only" not in dict(similar(index, "a"))
    assert similar(index, "never-seen") == []


def test_only_the_most_similar_neighbours_and_the_best_items_are_taken() -> None:
    index = index_of(("x", "y", "near"), ("x", "far"))
    found = similar(index, "x", "y", neighbours=1)
    assert [item for item, _ in found if item in ("near", "far")] == ["near"]
    assert len(similar(index, "x", limit=2)) == 2


def test_memory_is_bounded_in_sessions_items_per_session_and_sessions_per_item() -> None:
    index = SessionIndex(max_sessions=3, items_per_session=2, sessions_per_item=2)
    for number in range(5):
        for item in ("hub", f"own{number}", f"extra{number}"):
            index.add((f"u{number}", "s"), item, 0.0)
    assert len(index) == 3, "the least recently active sessions are forgotten"
    assert index.entries == 3 * 2, "a session keeps its first two distinct items"
    found = dict(similar(index, "hub"))
    # Only the two newest sessions are remembered for "hub".
    assert {item for item in found if item.startswith("own")} == {"own3", "own4"}


def test_a_deleted_item_leaves_every_session() -> None:
    index = index_of(("a", "gone", "b"), ("a", "gone"))
    index.remove_item("gone")
    assert "gone" not in dict(similar(index, "a"))
    assert index.entries == 3


def test_older_sessions_count_less_by_the_half_life() -> None:
    index = SessionIndex(10, items_per_session=5, sessions_per_item=5)
    for item in ("a", "then-old"):
        index.add(("old", "s"), item, 0.0)
    for item in ("a", "then-new"):
        index.add(("new", "s"), item, 30.0)
    found = dict(similar(index, "a", now=30))
    assert found["then-new"] == pytest.approx(1.0)
    assert found["then-old"] == pytest.approx(2.0**-3)


def test_a_forgotten_session_leaves_the_item_lists_so_its_key_can_start_afresh() -> None:
    # One session fits: u0's session is forgotten when u1's starts. Later, u0 comes back under
    # the same session label with other items; it must match on those alone.
    index = SessionIndex(1, items_per_session=20, sessions_per_item=10)
    index.add(("u0", "s"), "tent", 0.0)
    index.add(("u0", "s"), "stove", 0.0)
    index.add(("u1", "s"), "kayak", 0.0)
    index.add(("u0", "s"), "lamp", 0.0)
    index.add(("u0", "s"), "rope", 0.0)

    assert similar(index, "tent") == []
    assert similar(index, "lamp") == [("rope", 1.0), ("lamp", math.exp(-1 / 5))]
    assert index.entries == 2
