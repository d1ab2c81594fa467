"""The per-account store of released reports: runs of frames, exact capacity, resends from any
report number."""
from __future__ import annotations

import pytest

from engine.gateway.protocol import HEADER
from engine.gateway.server import ReportStore


def fr(n: int) -> bytes:
    body = b"r%d" % n
    return HEADER.pack(len(body)) + body


def frames(data: list[bytes]) -> list[int]:
    out, blob = [], b"".join(data)
    pos = 0
    while pos < len(blob):
        (n,) = HEADER.unpack_from(blob, pos)
        out.append(int(blob[pos + 5:pos + 4 + n]))
        pos += 4 + n
    return out


def run(store: ReportStore, account: int, first: int, last: int) -> None:
    store.add_run(account, first, last, b"".join(fr(i) for i in range(first, last + 1)))


@pytest.mark.parametrize("capacity", [1, 3, 10, 1000])
def test_resends_are_exactly_the_kept_reports_after_the_last_seen(capacity: int) -> None:
    s = ReportStore(capacity)
    run(s, 7, 1, 4)                   # one batch's run
    for i in range(5, 9):             # then one report at a time (merged into runs)
        s.add(7, i, fr(i))
    run(s, 7, 9, 12)
    kept_from = max(1, 12 - capacity + 1)
    for last_seen in range(0, 13):
        data, count, lost = s.since(7, last_seen)
        want = list(range(max(last_seen + 1, kept_from), 13))
        assert frames(data) == want and count == len(want)
        assert lost == (kept_from - 1 if last_seen + 1 < kept_from else 0)
    assert s.count[7] == min(capacity, 12) and s.released[7] == 12
    assert s.since(8, 0) == ([], 0, 0)


def test_a_store_of_nothing_keeps_only_the_numbering() -> None:
    s = ReportStore(0)
    run(s, 1, 1, 5)
    assert s.since(1, 2) == ([], 0, 5) and s.released[1] == 5
