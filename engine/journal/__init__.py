"""The journal: sequencer, append-only segment files, snapshots, recovery and replay.

This module only re-exports. The byte layout is in ``format`` (and docs/JOURNAL.md), the hot
loops in ``_codec`` (Cython), appending in ``writer``, reading in ``reader``, whole-state
snapshots in ``snapshot``, backtest replay in ``replay`` (the ``engine replay`` run around it
in ``replay_run``). The write path that ties the sequencer, the journal and the core together
is ``engine.pipeline.Engine``.
"""
from .format import (
    FORMAT_VERSION,
    RECORD_DTYPE,
    JournalCorrupt,
    JournalError,
    JournalMismatch,
)
from .reader import Journal, TornTail
from .replay import Replay, ReplayResult, ReplayStats, commands_to_arrow, events_to_arrow, new_core, replay
from .sequencer import Sequencer
from .writer import DURABILITIES, JournalWriter

__all__ = [
    "FORMAT_VERSION", "RECORD_DTYPE", "JournalCorrupt", "JournalError", "JournalMismatch",
    "Journal", "TornTail", "Replay", "ReplayResult", "ReplayStats", "commands_to_arrow",
    "events_to_arrow", "new_core", "replay", "Sequencer", "DURABILITIES", "JournalWriter",
]
