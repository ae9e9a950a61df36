"""A real Celery worker for tests: a subprocess on the test broker, consuming one queue."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, TEST_BROKER_URL

# Quick retries, so tests see several attempts in seconds.
QUICK_RETRIES = {"CCC_WEBHOOK_MAX_ATTEMPTS": "6", "CCC_WEBHOOK_RETRY_BASE_S": "0.3",
                 "CCC_WEBHOOK_RETRY_MAX_S": "1", "CCC_WEBHOOK_TIMEOUT_S": "1.5"}


def start_worker(database_url: str, queue: str, log_path: Path, concurrency: int = 8,
                 **extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, CCC_DATABASE_URL=database_url, CCC_CELERY_BROKER_URL=TEST_BROKER_URL,
               CCC_WEBHOOK_QUEUE=queue, CCC_CONFIG_FILE="/nonexistent", **QUICK_RETRIES)
    env.update(extra)
    log = log_path.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "controller.worker.app", "worker", "--queues", queue,
         "--pool", "threads", "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
         "--without-heartbeat", "--loglevel", "INFO"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()
    try:
        worker.wait(20)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(5)
