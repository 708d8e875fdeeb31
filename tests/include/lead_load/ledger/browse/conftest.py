"""The browse tests' ledger: two real loads into a simulator task (browse_samples), on every
ledger database."""

from __future__ import annotations

import pytest

from tests.include.lead_load.browse_samples import load_two_runs


@pytest.fixture
def loaded(engine, platform):
    return load_two_runs(engine, platform)
