"""Errors with stable ids at the switch boundary and in services.

Each has a ``code`` that the API renders as the problem type, so clients can branch on it.
"""

from __future__ import annotations


class ControllerError(Exception):
    code = "controller-error"
    status = 500

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.__class__.__doc__ or self.code)
        self.detail = detail or (self.__class__.__doc__ or self.code).strip()


class SwitchError(ControllerError):
    """The switch could not carry out a command."""

    code = "switch-error"
    status = 502


class LegGone(SwitchError):
    """The leg no longer exists on the switch (hung up or never created)."""

    code = "leg-gone"
    status = 409


class SwitchUnavailable(SwitchError):
    """The switch cannot be reached right now."""

    code = "switch-unavailable"
    status = 503


class CommandRejected(SwitchError):
    """The switch refused the command in the leg's current state."""

    code = "command-rejected"
    status = 409


class Unsupported(SwitchError):
    """This switch does not support the command."""

    code = "unsupported"
    status = 501


class UnsafeValue(ControllerError, ValueError):
    """A value would change the meaning of a switch command (CR/LF or a separator)."""

    code = "unsafe-value"
    status = 422


class NotFound(ControllerError):
    """No such resource."""

    code = "not-found"
    status = 404


class Forbidden(ControllerError):
    """This API key may not do this (its role, or the call is not its agent's)."""

    code = "forbidden"
    status = 403


class InvalidRequest(ControllerError, ValueError):
    """A well-formed request names something that cannot be used (an unknown agent or queue)."""

    code = "invalid-request"
    status = 422


class Conflict(ControllerError):
    """The request conflicts with the resource's current state."""

    code = "conflict"
    status = 409


class StorageUnavailable(ControllerError):
    """A storage backend (Postgres or Redis) cannot be reached right now."""

    code = "storage-unavailable"
    status = 503
