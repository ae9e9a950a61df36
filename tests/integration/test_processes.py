"""The command-line entry points and the Celery worker, as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.conftest import ROOT, TEST_DATABASE_URL, eventually

CLI = [sys.executable, "-m", "controller"]
BROKER = os.environ.get("CCC_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")


def cli_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, CCC_DATABASE_URL=TEST_DATABASE_URL, CCC_CELERY_BROKER_URL=BROKER,
               CCC_CONFIG_FILE="/nonexistent")
    env.update(extra)
    return env


def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=cli_env(**extra), cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_migrate_is_idempotent(migrated_database):
    first = cli("migrate")
    assert first.returncode == 0, first.stderr
    assert "migrated" in first.stdout
    assert cli("migrate").returncode == 0


async def test_create_admin_key_prints_a_key_that_the_api_accepts(migrated_database, start_runtime,
                                                                  api_client):
    created = cli("create-admin-key", "--name", "from the CLI")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("ccc_") and "\n" not in key
    runtime = await start_runtime()
    async with api_client(runtime) as client:
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200
        assert me.json()["role"] == "admin" and me.json()["name"] == "from the CLI"
        assert (await client.get("/v1/me", headers={"Authorization": f"Bearer {key}x"})).status_code == 401


def test_status_reports_each_dependency(migrated_database):
    # No controller listens on this port, so `status` checks each dependency itself.
    result = cli("status", CCC_API_PORT="9")
    lines = result.stdout
    for name in ("asterisk-ari", "asterisk-ami", "postgres", "redis"):
        assert name in lines
    assert result.returncode == 0, lines
    broken = cli("status", CCC_API_PORT="9", CCC_REDIS_URL="redis://127.0.0.1:1/0")
    assert broken.returncode == 1
    assert "redis" in broken.stdout and "DOWN" in broken.stdout


async def test_celery_worker_prunes_the_audit_log(db_conn):
    old = datetime.now(UTC) - timedelta(days=400)
    await db_conn.execute(
        "INSERT INTO audit_log (at, method, path, action, status) VALUES (%s, 'POST', '/v1/x', 'x', 201)",
        (old,))
    await db_conn.execute(
        "INSERT INTO audit_log (at, method, path, action, status) VALUES (now(), 'POST', '/v1/y', 'y', 201)")
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once; the test then only polls
        [*CLI, "worker", "--no-beat"], env=cli_env(), cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        from celery import Celery

        sender = Celery(broker=BROKER)
        sender.send_task("controller.worker.tasks.prune_audit_log", args=[365])

        async def pruned() -> bool:
            cursor = await db_conn.execute(
                "SELECT count(*) AS n FROM audit_log WHERE at < now() - interval '365 days'")
            return (await cursor.fetchone())["n"] == 0

        await eventually(pruned, 60, interval=0.5, what="the worker to prune old audit entries")
        cursor = await db_conn.execute("SELECT count(*) AS n FROM audit_log WHERE path = '/v1/y'")
        assert (await cursor.fetchone())["n"] == 1
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
