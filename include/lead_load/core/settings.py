"""What one run works on: the settings every step of a run reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunSettings:
    """What one run works on; built from params, passed between tasks as a small dict."""

    run_id: str
    api_task_id: str
    window_start: str
    window_end: str
    sub_user_id: str | None = None
    ignore_crm: bool | None = None
    encryption: bool | None = None
    dry_run: bool = False
    batch_size: int = 200
    stop_running_task: bool = False
    max_reject_ratio: float = 0.2

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSettings:
        return cls(**values)
