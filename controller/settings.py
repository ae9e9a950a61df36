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

from pydantic import AfterValidator, Field, SecretStr
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
    # Call recordings older than this are deleted (file and row) by the worker's daily job.
    recordings_retention_days: int = Field(default=90, ge=1)
    log_level: str = "INFO"

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
