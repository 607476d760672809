"""Exceptions shared by every service."""


class ConveyorError(Exception):
    """Base class; `code` is the machine-readable error code the API returns."""

    code = "error"


class UnknownTask(ConveyorError):
    code = "unknown_task"


class InvalidArguments(ConveyorError):
    code = "invalid_arguments"

    def __init__(self, message, details=None):
        super().__init__(message)
        self.details = details or []


class IdempotencyConflict(ConveyorError):
    code = "idempotency_conflict"


class TaskCancelled(ConveyorError):
    """Stands in Django's TaskResult.errors for a CANCELLED task (Django has no such status)."""
