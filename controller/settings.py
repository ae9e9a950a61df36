"""One typed settings object, built once at start-up and passed down.

Values come from environment variables prefixed ``CCC_`` or from the file named by
``CCC_CONFIG_FILE`` (default ``controller.env`` in the working directory). Secrets are
never given defaults that reach a production box: the defaults match the local Asterisk
that ``make run`` provisions on loopback.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_APP_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _stasis_app_name(value: str) -> str:
    # The app name ends up in dialplan (Stasis(app)) and URLs: keep it to a safe alphabet.
    if not _APP_NAME.match(value):
        raise ValueError("must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


def _context_name(value: str) -> str:
    # A dialplan context inside a Local/ dial string: no '@', '/', ',', '&' or spaces.
    if not _APP_NAME.match(value):
        raise ValueError("must be 1-64 characters of A-Z, a-z, 0-9, '_' or '-'")
    return value


_SOUND_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$")


def _sound_name(value: str) -> str:
    # A core sound (``sound:<name>`` for ARI): no ',', ':' or control characters.
    if not _SOUND_NAME.match(value):
        raise ValueError("a sound name: letters, digits, '_', '-', up to three '/'")
    return value


_FORMAT_LIST = re.compile(r"^[a-z0-9_]{1,16}(,[a-z0-9_]{1,16}){0,15}$")


def _format_list(value: str) -> str:
    # Asterisk format names ("core show codecs"), comma-separated: they go into an ARI parameter.
    if not _FORMAT_LIST.match(value):
        raise ValueError("must be Asterisk format names separated by commas, e.g. 'slin' or 'ulaw,g722'")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CCC_",
        env_file=os.environ.get("CCC_CONFIG_FILE", "controller.env"),
        env_file_encoding="utf-8",
        extra="ignore",
    )

    # Asterisk REST Interface
    ari_url: str = "http://127.0.0.1:8088"
    ari_user: str = "ccc"
    ari_password: SecretStr = SecretStr("ccc-local")
    ari_app: Annotated[str, AfterValidator(_stasis_app_name)] = "ccc"
    # Controller processes with the same cluster name share agents and queues (through Redis);
    # each needs its own ari_app, which also names the process in the shared ACD log.
    acd_cluster: Annotated[str, AfterValidator(_stasis_app_name)] = "ccc"

    # Asterisk Manager Interface
    ami_host: str = "127.0.0.1"
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_user: str = "ccc"
    ami_secret: SecretStr = SecretStr("ccc-local")

    # Storage
    database_url: str = "postgresql://ccc:ccc@127.0.0.1:5432/ccc"
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str = "redis://127.0.0.1:6379/1"

    # API
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=1, le=65535)

    # Reconnect back-off for every link (PBX, Redis, Postgres writer), in seconds.
    reconnect_initial_delay: float = Field(default=0.5, gt=0)
    reconnect_max_delay: float = Field(default=10.0, gt=0)
    # How long a readiness probe waits for each dependency.
    readiness_timeout: float = Field(default=1.0, gt=0)

    # What an inbound call hears when no route matches (the IVR replaces this per route).
    default_prompt: str = "sound:hello-world"
    audit_retention_days: int = Field(default=365, ge=1)
    # The reason codes an agent may pause with (comma separated); "no answer" is the ACD's own.
    pause_reasons: str = "break,lunch,training,after-call work,meeting,coaching"

    def pause_reason_codes(self) -> tuple[str, ...]:
        return tuple(code.strip() for code in self.pause_reasons.split(",") if code.strip())
    # Where a queue's callback dials the caller's number: Local/<number>@<this context>.
    callback_context: Annotated[str, AfterValidator(_context_name)] = "ccc-outbound"
    # The campaign dialer (services/dialer.py): whether this process dials running campaigns
    # (one process per campaign at a time, by a lease in Redis), the context a contact's number
    # is dialed through (Local/<number>@<this context>), how often each campaign is paced, the
    # most calls one round places, and the core sound an answered contact hears when no agent
    # takes the call within the hold (a campaign's own ``abandon_message`` wins).
    dialer_enabled: bool = True
    dialer_context: Annotated[str, AfterValidator(_context_name)] = "ccc-outbound"
    dialer_tick_s: float = Field(default=1.0, gt=0, le=10)
    dialer_max_per_round: int = Field(default=20, ge=1, le=1000)
    dialer_abandon_message: Annotated[str, AfterValidator(_sound_name)] = "im-sorry"
    # A preview offered to an agent and neither accepted nor skipped within this is withdrawn.
    dialer_preview_timeout_s: float = Field(default=120.0, ge=5, le=3600)
    # The media format of the Local channels the controller dials (agents' ``Local/...``
    # devices, callbacks, campaign calls through the dialplan). Without it Asterisk gives a
    # Local channel the best format it knows, slin192, and resamples every 8 kHz frame to it:
    # a hundred callers on hold then keep two cores busy. Asterisk picks the best of a list.
    local_channel_formats: Annotated[str, AfterValidator(_format_list)] = "slin"
    # The public event feed (GET /v1/events): how many events Redis keeps for clients that
    # reconnect and replay, how often an idle stream gets a heartbeat, and how often the ACD
    # leader publishes each queue's figures (queue.stats).
    events_history: int = Field(default=100_000, ge=100)
    events_heartbeat_s: float = Field(default=15.0, gt=0)
    events_queue_stats_s: float = Field(default=5.0, gt=0)
    # Call recordings older than this are deleted (file and row) by the worker's daily job.
    recordings_retention_days: int = Field(default=90, ge=1)
    # Contact imports with at most this many rows are read within the upload request; larger
    # ones are handed to the Celery worker (their progress is visible through the API).
    campaign_import_inline_rows: int = Field(default=2000, ge=0)
    log_level: str = "INFO"

    # Webhooks (docs/webhooks.md). Deliveries are Celery tasks on their own queue, so a worker
    # can be dedicated to them.
    webhook_queue: Annotated[str, AfterValidator(_context_name)] = "webhooks"
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=12, ge=1, le=50)
    webhook_retry_base_s: float = Field(default=10.0, gt=0)
    webhook_retry_max_s: float = Field(default=1800.0, gt=0, le=86_400)
    # Receivers on link-local addresses (cloud metadata services) are refused unless allowed;
    # deny_private refuses every address that is not public (loopback, RFC 1918, ...).
    webhook_allow_link_local: bool = False
    webhook_deny_private: bool = False
    # Finished deliveries (delivered or failed) are deleted from the log after this many days.
    webhook_log_retention_days: int = Field(default=30, ge=1)
    # How often alarms are evaluated, in seconds.
    alarm_interval_s: float = Field(default=2.0, gt=0, le=60)

    @model_validator(mode="after")
    def _retry_delays_in_order(self) -> Settings:
        if self.webhook_retry_base_s > self.webhook_retry_max_s:
            raise ValueError("webhook_retry_base_s must not exceed webhook_retry_max_s")
        return self

    # Inbound media. Empty means the local Asterisk's folders under its root
    # ($CCC_ASTERISK_ROOT, else ~/.cache/cc-controller/asterisk-sid) when that root exists,
    # else ./.local/prompts and ./.local/recordings. See prompts_path() and recordings_path().
    prompts_dir: str = ""          # uploaded prompts, played by Asterisk as sound:ccc/<name>
    recordings_dir: str = ""       # Asterisk's recording spool as the controller sees it
    max_prompt_seconds: int = Field(default=600, ge=1)

    def prompts_path(self) -> Path:
        return _media_dir(self.prompts_dir, "usr/share/asterisk/sounds/ccc", ".local/prompts")

    def recordings_path(self) -> Path:
        return _media_dir(self.recordings_dir, "var/spool/asterisk/recording", ".local/recordings")


def _media_dir(configured: str, under_asterisk: str, fallback: str) -> Path:
    if configured:
        return Path(configured)
    root = Path(os.environ.get("CCC_ASTERISK_ROOT")
                or Path.home() / ".cache" / "cc-controller" / "asterisk-sid")
    if root.is_dir():
        return root / under_asterisk
    return Path(fallback).resolve()


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
