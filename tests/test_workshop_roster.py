"""Seat names: numbered rooms, roster files, and every way a name is refused before anything is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.errors import WorkshopError
from lab.workshop.roster import SeatName, cn, numbered, read_roster, validate


def names(seats: list[SeatName]) -> list[str]:
    return [seat.name for seat in seats]


def test_numbered_seats_are_zero_padded_to_at_least_two_digits() -> None:
    assert names(numbered(3)) == ["01", "02", "03"]
    assert names(numbered(12))[-3:] == ["10", "11", "12"]
    assert names(numbered(100))[:2] == ["001", "002"]
    # Growing a room from 9 to 10 seats adds one seat instead of renaming the first nine.
    assert names(numbered(10))[:9] == names(numbered(9))


@pytest.mark.parametrize("count", [0, -1, 1000])
def test_a_room_has_one_to_999_seats(count: int) -> None:
    with pytest.raises(WorkshopError, match="1 to 999"):
        numbered(count)


def test_roster_skips_blank_lines_and_comments_and_names_each_line(tmp_path: Path) -> None:
    roster = tmp_path / "room.txt"
    roster.write_text("\ufeff# the Tuesday group\nalice\n\n  bob  \n# carol is away\ndan_1\n", encoding="utf-8")
    seats = read_roster(roster)
    assert names(seats) == ["alice", "bob", "dan_1"]
    assert [seat.origin for seat in seats] == ["room.txt line 2", "room.txt line 4", "room.txt line 6"]
    assert cn("alice") == "seat.alice"


def test_empty_or_missing_roster_is_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n\n")
    with pytest.raises(WorkshopError, match="names no seats"):
        read_roster(empty)
    with pytest.raises(WorkshopError, match="does not exist"):
        read_roster(tmp_path / "missing.txt")


@pytest.mark.parametrize("bad", ["bob smith", "-rf", ".hidden", "a/b", "x" * 25, "seat#1", "ünï", "a+b"])
def test_bad_name_names_its_line(tmp_path: Path, bad: str) -> None:
    roster = tmp_path / "room.txt"
    roster.write_text(f"alice\n{bad}\ncarol\n", encoding="utf-8")
    with pytest.raises(WorkshopError) as caught:
        validate(read_roster(roster))
    assert caught.value.message.startswith("room.txt line 2:")
    assert "\n" not in str(caught.value) and "nothing was created" in (caught.value.hint or "")


def test_repeated_name_and_case_twins_are_refused() -> None:
    with pytest.raises(WorkshopError, match="line 3: 'bob' repeats r line 1"):
        validate([SeatName("bob", "r line 1"), SeatName("al", "r line 2"), SeatName("bob", "r line 3")])
    with pytest.raises(WorkshopError, match="only in case"):
        validate([SeatName("Bob", "r line 1"), SeatName("bob", "r line 2")])


def test_no_seat_name_may_begin_another() -> None:
    # `${CommonName}*` would let seat.anna use seat.annabel's client IDs.
    with pytest.raises(WorkshopError, match="one begins the other") as caught:
        validate([SeatName("annabel", "r line 1"), SeatName("zoe", "r line 2"), SeatName("anna", "r line 3")])
    assert "seat.anna could take seat.annabel's client IDs" in caught.value.message
    assert validate([SeatName("anna_k", "r line 1"), SeatName("annabel", "r line 2")]) == ["anna_k", "annabel"]


def test_new_names_are_checked_against_existing_seats_too() -> None:
    with pytest.raises(WorkshopError, match=r"r line 1: '01' and '010' \(an existing seat\)"):
        validate([SeatName("01", "r line 1")], existing=["010"])
    assert validate([SeatName("dora", "r line 4")], existing=["01", "02"]) == ["dora"]
    # Asking again for seats that exist is no conflict with themselves.
    assert validate(numbered(2), existing=["01", "02"]) == ["01", "02"]
