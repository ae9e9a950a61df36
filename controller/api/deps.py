"""FastAPI dependencies shared by the routes."""

from __future__ import annotations

from fastapi import Request

from controller.bootstrap import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime
