"""Record of every platform request, so tests can see exactly what a client sent.

Bodies are kept as the parsed JSON object the handler also uses (no copy: the hot path stays
cheap). Headers are not kept, so the bearer token never lands in the journal.
"""

import time
from dataclasses import dataclass


@dataclass(slots=True)
class JournalEntry:
    seq: int
    time: float
    method: str
    path: str
    query: dict
    body: object
    status: int
    code: int | None
    fault: str | None

    def to_json(self) -> dict:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "body": self.body,
            "status": self.status,
            "code": self.code,
            "fault": self.fault,
        }


class Journal:
    def __init__(self) -> None:
        self.entries: list[JournalEntry] = []
        # Sequence numbers keep growing across a reset, so a reader's stale `since` never
        # hides new entries; `base` is the seq just before entries[0].
        self.base = 0

    def clear(self) -> None:
        self.base = self.last_seq
        self.entries = []

    def record(self, method, path, query, body, status, code, fault) -> JournalEntry:
        entry = JournalEntry(
            seq=self.last_seq + 1,
            time=time.time(),
            method=method,
            path=path,
            query=query,
            body=body,
            status=status,
            code=code,
            fault=fault,
        )
        self.entries.append(entry)
        return entry

    def since(self, seq: int) -> list[JournalEntry]:
        # seq n is stored at index n - base - 1, so entries after `seq` start at seq - base.
        return self.entries[max(0, seq - self.base) :]

    @property
    def last_seq(self) -> int:
        return self.base + len(self.entries)
