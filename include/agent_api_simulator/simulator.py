"""The simulator's single object: platform state, journal, faults and the batch processor."""

from dataclasses import dataclass

from agent_api_simulator import assumptions as assumed
from agent_api_simulator.faults import FaultConfig, FaultInjector
from agent_api_simulator.journal import Journal
from agent_api_simulator.processing import BatchProcessor
from agent_api_simulator.state import Batch, SimState


@dataclass
class SimulatorSettings:
    token: str
    process_delay: float = assumed.DEFAULT_PROCESS_DELAY_S
    seed: int = 0
    faults: dict | None = None  # initial fault config, as given to --faults
    user_id: str | None = None  # created at start so demos need no admin calls
    task_id: str | None = None


class Simulator:
    def __init__(self, settings: SimulatorSettings) -> None:
        self.settings = settings
        self.token = settings.token
        self.state = SimState()
        self.journal = Journal()
        self.processor = BatchProcessor(self.state)
        self.faults = FaultInjector(FaultConfig.from_json(settings.faults or {}, settings.seed))
        if settings.user_id:
            user = self.state.add_user(settings.user_id)
            if settings.task_id:
                self.state.add_task(user, settings.task_id)

    def reset(self) -> None:
        """Forget everything (including the start-up user/task) and switch faults off."""
        self.state = SimState()
        self.journal.clear()
        self.processor.reset(self.state)
        self.faults = FaultInjector(FaultConfig(seed=self.settings.seed))

    def set_faults(self, payload) -> FaultConfig:
        """Replace the fault config; re-seeds the random stream. Raises FaultConfigError."""
        self.faults = FaultInjector(FaultConfig.from_json(payload, self.settings.seed))
        return self.faults.config

    def accept_batch(
        self,
        user_id: str,
        task_id: str,
        sub_user_id: str | None,
        rows: list[dict],
        encryption: bool,
        never_process: bool,
    ) -> Batch:
        delay = self.faults.config.callback_delay
        if delay is None:
            delay = self.settings.process_delay
        batch = self.state.add_batch(
            user_id, task_id, sub_user_id, rows, encryption, None if never_process else delay
        )
        self.processor.submit(batch)
        return batch
