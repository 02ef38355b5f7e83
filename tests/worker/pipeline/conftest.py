"""The pipeline tests' world: see ``tests.worker.pipeline.salla_world``."""

from __future__ import annotations

import pytest

from tests.worker.pipeline.salla_world import Serve, World, make_world
from worker.runtime import Runtime


@pytest.fixture
def world(runtime: Runtime, serve: Serve) -> World:
    return make_world(runtime, serve)
