"""Deliberate misbehaviour of the platform routes, configured through /_sim/faults.

Random decisions come from one random.Random(seed). Every platform request draws the same
fixed number of values, synchronously when it arrives, whatever the configuration: so the
same seed and the same request sequence give the same faults, also across a reset.
"""

import asyncio
import math
import random
import time
from dataclasses import asdict, dataclass, fields

from agent_api_simulator import assumptions as assumed


class FaultConfigError(ValueError):
    pass


@dataclass
class FaultConfig:
    seed: int = 0
    error_rate: float = 0.0  # answer HTTP 500/502/503 before accepting anything
    rate_429: float = 0.0  # answer HTTP 429 with Retry-After
    retry_after: int = 1  # seconds, for rate_429
    rate_limit_rps: float | None = None  # token bucket over all platform routes
    lost_answer_rate: float = 0.0  # async_number: accept, then answer only after a long sleep
    lost_answer_delay: float = 30.0
    callback_delay: float | None = None  # overrides the process delay ("slow callbacks")
    callback_never_rate: float = 0.0  # batch stays pending forever
    expired_token: bool = False  # every bearer-protected route answers 401
    omit_page_fields: bool = False  # number list: only `data`, no undocumented page fields
    ignore_page: bool = False  # number list: every page is the first one
    forget_callbacks: bool = False  # callback data: every unique_id answers "not found"
    expire_download_links: bool = False  # every download link answers "not found"
    max_per_page: int | None = None  # number list: per_page capped at this (said in per_page)
    empty_page_at: int | None = None  # number list: this page answers no rows, though it has some
    # async_number: hold the answers of the next N accepted imports until /_sim/release, and
    # refuse every further import with 429 (retry_after) once N answers are held.
    hold_accepted_answers: int = 0

    RATES = ("error_rate", "rate_429", "lost_answer_rate", "callback_never_rate")
    SWITCHES = (
        "expired_token",
        "omit_page_fields",
        "ignore_page",
        "forget_callbacks",
        "expire_download_links",
    )
    NULLABLE = ("rate_limit_rps", "callback_delay", "max_per_page", "empty_page_at")

    @classmethod
    def from_json(cls, payload, default_seed: int) -> "FaultConfig":
        """Build a config from a JSON object; absent keys take their defaults (no merging)."""
        if not isinstance(payload, dict):
            raise FaultConfigError("fault config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = set(payload) - known
        if unknown:
            raise FaultConfigError(f"unknown fault settings: {sorted(unknown)}")
        config = cls(seed=default_seed)
        for name, value in payload.items():
            if value is None and name in cls.NULLABLE:
                continue
            if name in cls.SWITCHES:
                if type(value) is not bool:
                    raise FaultConfigError(f"{name} must be a boolean")
            elif name in ("seed", "retry_after", "hold_accepted_answers"):
                if type(value) is not int or value < 0:
                    raise FaultConfigError(f"{name} must be a non-negative integer")
            elif name in ("max_per_page", "empty_page_at"):
                if type(value) is not int or value < 1:
                    raise FaultConfigError(f"{name} must be a positive integer (or null for none)")
            elif type(value) not in (int, float) or value < 0:
                raise FaultConfigError(f"{name} must be a non-negative number")
            if name in cls.RATES and value > 1:
                raise FaultConfigError(f"{name} is a probability between 0 and 1")
            if name == "rate_limit_rps" and value == 0:
                raise FaultConfigError("rate_limit_rps must be positive (or null for none)")
            setattr(config, name, value)
        return config

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class FaultDecision:
    """What happens to one platform request. `response_*` set = answer that, do nothing else."""

    response_status: int | None = None
    retry_after: int | None = None
    name: str | None = None  # journal name of the fault that answered
    lost_answer: bool = False
    callback_never: bool = False


class AnswerHold:
    """The answers that ``hold_accepted_answers`` holds back, until ``release()``.

    The imports themselves are accepted (and processed) as usual; only their HTTP answers
    wait. Once the N answers are taken, every further import is refused until the release,
    so nothing else is accepted in between. Not drawn from the random stream.
    """

    def __init__(self, count: int) -> None:
        self.left = count  # answers still to be held
        self.holding = count > 0  # until the release
        self.held = 0  # answers waiting right now
        self.released = asyncio.Event()

    def refuses_imports(self) -> bool:
        return self.holding and self.left == 0

    def take(self) -> bool:
        """Hold the answer of an import accepted just now? (Counts it as held.)"""
        if not (self.holding and self.left > 0):
            return False
        self.left -= 1
        self.held += 1
        return True

    def answered(self) -> None:
        """One held answer went out (or its client went away)."""
        self.held -= 1

    def release(self) -> int:
        """Send every held answer and stop refusing imports; return how many were held."""
        self.holding = False
        self.left = 0
        self.released.set()
        return self.held


class FaultInjector:
    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self.hold = AnswerHold(config.hold_accepted_answers)
        self.rng = random.Random(config.seed)  # noqa: S311 - simulation, not security
        self.bucket_tokens = max(1.0, config.rate_limit_rps) if config.rate_limit_rps else 0.0
        self.bucket_time = time.monotonic()

    def decide(self) -> FaultDecision:
        """Draw this request's fate. Must run before the first await of the request."""
        config = self.config
        # Always five draws, in this order, so the stream does not depend on the settings.
        error_roll, error_pick, roll_429, lost_roll, never_roll = (
            self.rng.random() for _ in range(5)
        )
        decision = FaultDecision(
            lost_answer=lost_roll < config.lost_answer_rate,
            callback_never=never_roll < config.callback_never_rate,
        )
        wait_s = self.take_token()
        if wait_s:
            decision.response_status = assumed.CODE_RATE_LIMITED
            decision.retry_after = max(1, math.ceil(wait_s))
            decision.name = "rate_limit"
        elif roll_429 < config.rate_429:
            decision.response_status = assumed.CODE_RATE_LIMITED
            decision.retry_after = config.retry_after
            decision.name = "rate_429"
        elif error_roll < config.error_rate:
            statuses = assumed.SERVER_ERROR_STATUSES
            decision.response_status = statuses[int(error_pick * len(statuses))]
            decision.name = "error_rate"
        return decision

    def take_token(self) -> float:
        """Token bucket (burst = one second's worth). Return 0, or seconds until a token."""
        rps = self.config.rate_limit_rps
        if not rps:
            return 0.0
        now = time.monotonic()
        capacity = max(1.0, rps)
        self.bucket_tokens = min(capacity, self.bucket_tokens + (now - self.bucket_time) * rps)
        self.bucket_time = now
        if self.bucket_tokens >= 1.0:
            self.bucket_tokens -= 1.0
            return 0.0
        return (1.0 - self.bucket_tokens) / rps
