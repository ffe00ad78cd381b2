"""Shared setup of the wizard tests: a host described by hand, not this machine."""
from __future__ import annotations

import pytest

from installer.detect import HostFacts
from wizardhelp import make_facts


@pytest.fixture
def facts() -> HostFacts:
    return make_facts()
