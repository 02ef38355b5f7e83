"""The worker pool ``run``, the Procfile and compose start: one setting decides it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.celery_app import celery_config
from worker.cli.serve import service_commands
from worker.config import ConfigError, default_worker_concurrency, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_pool_is_prefork_four_processes_per_core_unless_set(tmp_path: Path) -> None:
    settings = load_settings({"RELAY_DATA_DIR": str(tmp_path)})
    config = celery_config(settings)
    assert config["worker_pool"] == "prefork"
    cores = len(os.sched_getaffinity(0))
    assert config["worker_concurrency"] == default_worker_concurrency() == 4 * cores
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_WORKER_CONCURRENCY": "3"}
    assert celery_config(load_settings(env))["worker_concurrency"] == 3


@pytest.mark.parametrize("value", ["0", "1000", "many"])
def test_a_pool_size_out_of_range_is_refused_by_name(tmp_path: Path, value: str) -> None:
    env = {"RELAY_DATA_DIR": str(tmp_path), "RELAY_WORKER_CONCURRENCY": value}
    with pytest.raises(ConfigError, match="RELAY_WORKER_CONCURRENCY"):
        load_settings(env)


def test_run_procfile_and_compose_leave_the_size_to_the_setting() -> None:
    worker = service_commands("127.0.0.1", 8000, None)["worker"]
    assert "--concurrency" not in worker and "--pool" not in worker
    assert "--concurrency" in service_commands("127.0.0.1", 8000, 5)["worker"]
    procfile = (ROOT / "Procfile").read_text()
    compose = (ROOT / "docker-compose.yml").read_text()
    for text in (procfile, compose):
        assert "celery" in text and "--concurrency" not in text and "--pool" not in text
