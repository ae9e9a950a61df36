"""Command line: ``cc-controller run|worker|migrate|create-admin-key|status``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile

import httpx

from controller import logs
from controller.settings import Settings, load_settings

log = logging.getLogger("controller")


async def _run(settings: Settings) -> None:
    import uvicorn

    from controller.api.app import create_app
    from controller.bootstrap import build_runtime

    runtime = build_runtime(settings)
    await runtime.start()
    app = create_app(runtime)
    server = uvicorn.Server(uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, log_config=None,
        access_log=False, lifespan="off",
        # Event streams never end by themselves: at shutdown they are cut after this long.
        timeout_graceful_shutdown=3,
        # WebSocket pings keep idle event streams (GET /v1/events) open through proxies.
        ws_ping_interval=settings.events_heartbeat_s, ws_ping_timeout=settings.events_heartbeat_s))
    log.info("controller up: API http://%s:%d (docs /docs), Stasis app %r, Asterisk %s",
             settings.api_host, settings.api_port, settings.ari_app, settings.ari_url)
    try:
        await server.serve()
    finally:
        await runtime.close()


async def _create_admin_key(settings: Settings, name: str) -> str:
    from controller.domain.access import Role
    from controller.services.api_keys import ApiKeyService
    from controller.storage.db import Database
    from controller.storage.outbox import RecordWriter

    db = Database(settings.database_url, min_size=1, max_size=1)
    await db.open()
    records = RecordWriter(db)
    await records.start()
    try:
        _, plaintext = await ApiKeyService(db, records).create(name, Role.ADMIN, None)
        await records.flushed()
    finally:
        await records.close()
        await db.close()
    return plaintext


async def _status(settings: Settings) -> int:
    url = f"http://{settings.api_host}:{settings.api_port}/readyz"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            body = (await client.get(url)).json()
        source = f"the running controller ({url})"
        deps = body["dependencies"]
    except (httpx.HTTPError, ValueError, KeyError):
        from controller.bootstrap import build_runtime

        source = "direct checks (no controller answers on the API port)"
        runtime = build_runtime(settings)
        await runtime.switch.start()
        await asyncio.sleep(2)  # let ARI's socket and AMI's login complete
        deps = [{"name": s.name, "ok": s.ok, "detail": s.detail}
                for s in await runtime.health.readiness()]
        await runtime.switch.close()
        await runtime.live.redis.aclose()
    print(f"status from {source}:")
    for dep in deps:
        print(f"  {dep['name']:<14} {'up  ' if dep['ok'] else 'DOWN'}  {dep['detail']}")
    return 0 if all(d["ok"] for d in deps) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cc-controller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the controller (PBX links, call handling) and the REST API")
    worker = sub.add_parser("worker", help="run a Celery worker (with beat unless --no-beat)")
    worker.add_argument("--no-beat", action="store_true")
    worker.add_argument("--queues", help="queues to consume (default: celery and the webhook queue)")
    worker.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"],
                        help="Celery pool; threads suit a worker given to webhook deliveries")
    worker.add_argument("--concurrency", type=int, default=2)
    sub.add_parser("migrate", help="apply the database migrations")
    key = sub.add_parser("create-admin-key", help="create an admin API key and print it once")
    key.add_argument("--name", default="admin")
    key.add_argument("--json", action="store_true", help="print {\"key\": ...} instead of the bare key")
    sub.add_parser("status", help="show whether Asterisk, Postgres and Redis are usable")
    args = parser.parse_args(argv)

    settings = load_settings()
    logs.configure(settings.log_level)

    if args.command == "run":
        try:
            asyncio.run(_run(settings))
        except KeyboardInterrupt:
            pass
        return 0
    if args.command == "worker":
        queues = args.queues or f"celery,{settings.webhook_queue}"
        argv_celery = [sys.executable, "-m", "celery", "-A", "controller.worker.app", "worker", "--loglevel",
                       settings.log_level, "--concurrency", str(args.concurrency), "--pool", args.pool,
                       "--queues", queues]
        if not args.no_beat:
            schedule = os.path.join(tempfile.gettempdir(), f"cc-controller-beat-{os.getuid()}")
            argv_celery += ["--beat", "--schedule", schedule]
        os.execvp(argv_celery[0], argv_celery)
    if args.command == "migrate":
        from controller.storage.migrate import upgrade

        upgrade(settings.database_url)
        print("database migrated to the latest revision")
        return 0
    if args.command == "create-admin-key":
        plaintext = asyncio.run(_create_admin_key(settings, args.name))
        print(json.dumps({"key": plaintext}) if args.json else plaintext)
        return 0
    if args.command == "status":
        return asyncio.run(_status(settings))
    return 2


if __name__ == "__main__":
    sys.exit(main())
