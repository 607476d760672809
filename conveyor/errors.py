"""Every error Conveyor raises on purpose, in one hierarchy.

Each class carries its machine-readable ``code`` and the HTTP ``status`` the web
service answers with, so no caller decides a status by looking at a message. The
message defaults to the class docstring's first line, as in procrastinate:
``raise TaskNotFound()`` is enough; pass a message to say more.

    ConveyorError
    ├── ClientError (4xx: the caller can fix it)
    │   ├── InvalidRequest, MalformedBody, UnknownTask, InvalidArguments, InvalidSchedule
    │   ├── Unauthorized (401), Forbidden (403)
    │   ├── NotFound (404): TaskNotFound, ScheduleNotFound, PathNotFound
    │   ├── Conflict (409): IdempotencyConflict, TransitionNotAllowed, ScheduleExists, DeclaredInCode
    │   └── BodyTooLarge (413)
    ├── ServiceUnavailable (503): DatabaseUnavailable, PublishError
    └── TaskCancelled (stands in Django's TaskResult.errors)
"""

from typing import Any


class ConveyorError(Exception):
    """Something went wrong in Conveyor."""

    code: str = "error"
    status: int = 500
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None, details: Any = None) -> None:
        super().__init__(message or (self.__doc__ or self.code).strip().splitlines()[0])
        self.details = details

    @property
    def message(self) -> str:
        return str(self.args[0])


# --- the caller's fault: 4xx -----------------------------------------------------------


class ClientError(ConveyorError):
    """The request cannot be carried out as sent."""

    code = "bad_request"
    status = 400


class InvalidRequest(ClientError):
    """The request does not match the API's schema."""

    code = "invalid_request"


class MalformedBody(ClientError):
    """The request body is not valid JSON."""

    code = "malformed_json"


class MalformedUpload(ClientError):
    """The multipart request body cannot be parsed."""

    code = "malformed_upload"


class UnknownTask(ClientError):
    """No task of that name is in the catalog."""

    code = "unknown_task"


class InvalidArguments(ClientError):
    """The arguments do not fit the task's signature."""

    code = "invalid_arguments"


class InvalidWorkflow(ClientError):
    """The workflow cannot be built; `details.step` says where, e.g. "workflow.chain[2].group[0]"."""

    code = "invalid_workflow"


class InvalidSchedule(ClientError, ValueError):
    """The schedule's timing cannot produce fire times."""

    code = "invalid_schedule"


class Unauthorized(ClientError):
    """Missing or invalid bearer token."""

    code = "unauthorized"
    status = 401
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ClientError):
    """This token may not do that."""

    code = "forbidden"
    status = 403


class NotFound(ClientError):
    """Nothing is there."""

    code = "not_found"
    status = 404


class TaskNotFound(NotFound):
    """No such task (or not one this token may see)."""

    code = "task_not_found"


class WorkflowNotFound(NotFound):
    """No such workflow (or not one this token may see)."""

    code = "workflow_not_found"


class CursorNotFound(NotFound):
    """The task a list cursor points at is gone, or not visible to this token."""

    code = "cursor_not_found"


class ScheduleNotFound(NotFound):
    """No such schedule."""

    code = "schedule_not_found"


class PathNotFound(NotFound):
    """No such path in the API."""

    code = "path_not_found"


class Conflict(ClientError):
    """The request conflicts with the current state."""

    code = "conflict"
    status = 409


class IdempotencyConflict(Conflict):
    """That Idempotency-Key was already used for a different task."""

    code = "idempotency_conflict"


class TransitionNotAllowed(Conflict):
    """The task's status does not allow that change."""

    code = "transition_not_allowed"


class NotCancellable(TransitionNotAllowed):
    """Only a READY task can be cancelled."""

    code = "not_cancellable"


class NotRetryable(TransitionNotAllowed):
    """Only a FAILED or CANCELLED task can be retried."""

    code = "not_retryable"


class ScheduleExists(Conflict):
    """A schedule of that name exists."""

    code = "schedule_exists"


class DeclaredInCode(Conflict):
    """The schedule is declared in code; disable it or remove it from the code."""

    code = "declared_in_code"


class BodyTooLarge(ClientError):
    """The request body is too large."""

    code = "body_too_large"
    status = 413


# --- not the caller's fault: 5xx -------------------------------------------------------


class ServiceUnavailable(ConveyorError):
    """A service Conveyor needs is unreachable; retry later."""

    code = "unavailable"
    status = 503
    headers = {"Retry-After": "5"}


class DatabaseUnavailable(ServiceUnavailable):
    """The task database is unreachable; retry later."""

    code = "database_unavailable"


class PublishError(ServiceUnavailable):
    """RabbitMQ did not confirm the messages (connection lost, timeout, channel closed)."""

    code = "broker_unavailable"


# --- raised by tasks --------------------------------------------------------------------


class TaskRejected(ConveyorError):
    """The task cannot succeed with these arguments: it fails at once, without retries.

    Raise it (or a subclass) from a task when retrying cannot help; list other exception
    classes with `@task(throws=(...))`. Django's SuspiciousOperation (a path outside the
    media folder, for instance) fails at once too.
    """

    code = "task_rejected"


# --- not raised: a value in Django's TaskResult.errors ----------------------------------


class TaskCancelled(ConveyorError):
    """The task was cancelled (Django has no CANCELLED status: it reads as FAILED with this error)."""

    code = "cancelled"
