"""Artefact size limits and quarantine retention: the pure rules, table by table."""

from __future__ import annotations

import pytest

from tritonops.core.limits import GIB, ArtifactLimits, Quarantined, to_prune

LIMITS = ArtifactLimits(max_bytes=10 * GIB, max_files=100, free_margin_bytes=GIB)


@pytest.mark.parametrize(
    ("total", "files", "complaint"),
    [
        (10 * GIB, 100, None),
        (10 * GIB + 1, 1, "over the limit of 10.00 GiB"),
        (1, 101, "101 files, over the limit of 100"),
    ],
)
def test_size_and_file_count(total: int, files: int, complaint: str | None) -> None:
    got = LIMITS.exceeded(total, files)
    assert got == complaint if complaint is None else complaint in got


@pytest.mark.parametrize(
    ("need", "free", "room"),
    [(GIB, 2 * GIB, True), (GIB, 2 * GIB - 1, False), (0, GIB - 1, False)],
)
def test_free_space_keeps_a_margin(need: int, free: int, room: bool) -> None:
    assert (LIMITS.no_room(need, free) is None) is room


def q(version: int, stamp: str, n: int = 0) -> Quarantined:
    name = f"{version}.failed_{stamp}" + (f"-{n}" if n else "")
    parsed = Quarantined.parse(name)
    assert parsed is not None
    return parsed


def test_parse_only_our_names() -> None:
    assert q(13, "20261208T010203", 2).version == 13
    for other in ("notes.txt", "13.failed_", "x.failed_20261208T010203", "13.failed_20261208T010203-x"):
        assert Quarantined.parse(other) is None


def test_the_newest_are_kept_and_the_oldest_pruned() -> None:
    entries = [q(v, f"2026120{v}T000000") for v in range(1, 8)]
    pruned = to_prune(entries, keep=3, committed=set(), installed=set())
    assert [e.version for e in pruned] == [1, 2, 3, 4]
    assert to_prune(entries, keep=10, committed=set(), installed=set()) == []


def test_the_only_copy_of_a_committed_version_is_never_pruned() -> None:
    entries = [
        q(2, "20261201T000000"),
        q(2, "20261202T000000"),
        q(3, "20261203T000000"),
        q(4, "20261204T000000"),
    ]
    # Version 2 was committed once and is no longer in the repository: its newest copy stays.
    pruned = to_prune(entries, keep=1, committed={2}, installed=set())
    assert [e.name for e in pruned] == ["2.failed_20261201T000000", "3.failed_20261203T000000"]
    # Still installed: the quarantined copies are not the only ones.
    pruned = to_prune(entries, keep=1, committed={2}, installed={2})
    assert [e.version for e in pruned] == [2, 2, 3]


def test_same_second_entries_order_by_their_suffix() -> None:
    entries = [q(5, "20261201T000000"), q(5, "20261201T000000", 1), q(5, "20261201T000000", 2)]
    assert [e.n for e in to_prune(entries, keep=1, committed=set(), installed=set())] == [0, 1]
