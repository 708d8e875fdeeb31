"""In-memory state of the simulated platform: users, tasks, imported numbers, batches."""

import time
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime

from agent_api_simulator import assumptions as assumed


def platform_time(epoch: float) -> str:
    """Format an epoch the way the platform shows times ("YYYY-MM-DD HH:MM:SS", UTC+8)."""
    return datetime.fromtimestamp(epoch, assumed.PLATFORM_TZ).strftime(assumed.PLATFORM_TIME_FORMAT)


def iso_time(epoch: float) -> str:
    """Precise timestamp for admin views, where tests compare delays."""
    return datetime.fromtimestamp(epoch, assumed.PLATFORM_TZ).isoformat(timespec="milliseconds")


def _imported_second(number: "ImportedNumber") -> int:
    return int(number.imported_at)


class ImportedNumber:
    """One number imported into a task. Keeps a reference to the sent row, not a copy."""

    __slots__ = ("imported_at", "phone", "row", "unique_id")

    def __init__(self, phone: str, row: dict, unique_id: str, imported_at: float) -> None:
        self.phone = phone
        self.row = row
        self.unique_id = unique_id
        self.imported_at = imported_at


@dataclass
class Task:
    task_id: str
    user_id: str
    name: str
    version: int
    status: int
    sub_user_id: str | None
    # Insertion order is the listing order; the set makes the duplicate check O(1).
    numbers: list[ImportedNumber] = field(default_factory=list)
    phones: set[str] = field(default_factory=set)

    def imported_between(self, start: int | None, end: int | None) -> tuple[int, int]:
        """The slice ``[first, stop)`` of ``numbers`` imported within the epoch seconds
        ``[start, end]``. Imports only append, at times that never go back (see
        ``processing.import_batch``), so a binary search finds it: a platform holding a
        million numbers answers each page of a bounded read without scanning them all."""
        second = _imported_second
        first = 0 if start is None else bisect_left(self.numbers, start, key=second)
        stop = len(self.numbers) if end is None else bisect_right(self.numbers, end, key=second)
        return first, max(first, stop)

    def describe(self) -> dict:
        return {
            "task_id": self.task_id,
            "user_id": self.user_id,
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "sub_user_id": self.sub_user_id,
        }


@dataclass
class User:
    user_id: str
    sub_user_ids: set[str] = field(default_factory=set)
    tasks: dict[str, Task] = field(default_factory=dict)
    template: list[dict] = field(default_factory=list)
    template_by_id: dict[str, dict] = field(default_factory=dict)  # for row validation

    def set_template(self, components: list[dict]) -> None:
        self.template = components
        self.template_by_id = {c["id"]: c for c in components}


@dataclass
class Batch:
    unique_id: str
    user_id: str
    task_id: str
    sub_user_id: str | None
    rows: list[dict]
    encryption: bool
    received_at: float
    due_at: float | None  # None: the "callback_never" fault, stays pending forever
    processed_at: float | None = None
    imported_phones: list[str] = field(default_factory=list)
    download_key: str | None = None

    @property
    def pending(self) -> bool:
        return self.processed_at is None

    def describe(self) -> dict:
        return {
            "unique_id": self.unique_id,
            "user_id": self.user_id,
            "task_id": self.task_id,
            "sub_user_id": self.sub_user_id,
            "rows": len(self.rows),
            "status": "pending" if self.pending else "processed",
            "imported": len(self.imported_phones),
            "received_at": iso_time(self.received_at),
            "processed_at": None if self.processed_at is None else iso_time(self.processed_at),
            "callback_never": self.due_at is None,
        }


class SimState:
    """All mutable platform data. Reset wipes it by building a new instance."""

    def __init__(self) -> None:
        self.users: dict[str, User] = {}
        self.batches: dict[str, Batch] = {}  # unique_id -> batch, arrival order
        self.downloads: dict[str, Batch] = {}  # download key -> processed batch

    def add_user(self, user_id: str | None = None, sub_user_ids=()) -> User:
        user_id = user_id or str(uuid.uuid4())
        user = self.users.get(user_id)
        if user is None:
            user = self.users[user_id] = User(user_id)
        user.sub_user_ids.update(sub_user_ids)
        return user

    def add_task(
        self,
        user: User,
        task_id: str | None = None,
        name: str | None = None,
        version: int = 2,
        status: int = assumed.TASK_PAUSED,
        sub_user_id: str | None = None,
    ) -> Task:
        task_id = task_id or str(uuid.uuid4())
        task = Task(
            task_id=task_id,
            user_id=user.user_id,
            name=name or f"task-{task_id[:8]}",
            version=version,
            status=status,
            sub_user_id=sub_user_id,
        )
        user.tasks[task_id] = task
        return task

    def add_batch(
        self,
        user_id: str,
        task_id: str,
        sub_user_id: str | None,
        rows: list[dict],
        encryption: bool,
        delay_s: float | None,
    ) -> Batch:
        now = time.time()
        batch = Batch(
            unique_id=str(uuid.uuid4()),
            user_id=user_id,
            task_id=task_id,
            sub_user_id=sub_user_id,
            rows=rows,
            encryption=encryption,
            received_at=now,
            due_at=None if delay_s is None else now + delay_s,
        )
        self.batches[batch.unique_id] = batch
        return batch
