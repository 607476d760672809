"""Fixtures for the dashboard's tests: users of each kind, task rows, and no RabbitMQ.

The dashboard reads RabbitMQ's figures through services.web.exposition.queue_collector;
here that answers None (unreadable) unless a test sets fixed figures.
"""

import html
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.queue_metrics import QueueFigures


@pytest.fixture(autouse=True)
def queue_figures(monkeypatch):
    """RabbitMQ's figures as the dashboard reads them: None by default; `.set(QueueFigures)` to fix them."""
    from services.web import exposition

    class Figures:
        value = None

        def set(self, value):
            self.value = value

    figures = Figures()
    monkeypatch.setattr(exposition.queue_collector, "figures", lambda: figures.value)
    return figures


def fixed_figures(**ready):
    """QueueFigures with these ready counts (and 1 consumer, 0 elsewhere) for each queue named."""
    depth = {}
    for name, count in ready.items():
        depth.update({(name, "ready"): count, (name, "unacked"): 0, (name, "delayed"): 0, (name, "dead_letter"): 0})
    return QueueFigures(depth, dict.fromkeys(ready, 1), dict.fromkeys(ready, 0.0), dict.fromkeys(ready, 0), 0.01)


def make_user(username, *, staff=True, perms=()):
    user = User.objects.create_user(username, f"{username}@example.com", "pw", is_staff=staff)
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(content_type__app_label="conveyor", codename=codename))
    return user


@pytest.fixture
def viewer_user(db):
    return make_user("viewer", perms=("view_taskrecord",))


@pytest.fixture
def operator_user(db):
    return make_user("operator", perms=("view_taskrecord", "change_taskrecord"))


def logged_in(user, **options):
    client = Client(**options)
    client.force_login(user)
    return client


@pytest.fixture
def viewer(viewer_user):
    """A client logged in as staff with the view permission only."""
    return logged_in(viewer_user)


@pytest.fixture
def operator(operator_user):
    """A client logged in as staff with the view and change permissions."""
    return logged_in(operator_user)


def make_task(
    path="demo.tasks.add",
    status=TaskStatus.READY,
    *,
    args=(1, 2),
    enqueued_at=None,
    **fields,
):
    """A task row as a worker would have left it (status_group follows status by a database trigger)."""
    record = TaskRecord.objects.create(task_path=path, status=status, args=list(args), **fields)
    if enqueued_at is not None:
        TaskRecord.objects.filter(id=record.id).update(enqueued_at=enqueued_at)
    record.refresh_from_db()
    return record


def error(exception="builtins.ValueError", message="bad value", traceback="Traceback (most recent call last)", n=1):
    """An entry of TaskRecord.errors."""
    return {
        "exception_class_path": exception,
        "message": message,
        "traceback": traceback,
        "attempt": n,
        "at": (timezone.now() - timedelta(minutes=10 - n)).isoformat(),
    }


def failed_task(path="demo.tasks.add", exception="builtins.ValueError", **fields):
    fields.setdefault("errors", [error(exception)])
    return make_task(path, TaskStatus.FAILED, finished_at=timezone.now(), **fields)


def status_of(record):
    return TaskRecord.objects.get(id=record.id).status


def listed(response):
    """Ids of the task rows a task list page shows, in order."""
    return re.findall(r'<tr data-task="([0-9a-f-]{36})">', response.content.decode())


def messages_of(response):
    """The messages the request added (shown on the page, or kept for the page redirected to)."""
    return [str(message) for message in get_messages(response.wsgi_request)]


def post_forms(response):
    """The action URLs of the POST forms in a page."""
    actions = []
    for tag in re.findall(r"<form\b[^>]*>", response.content.decode(), re.I):
        if re.search(r"method=[\"']?post", tag, re.I):
            found = re.search(r"action=\"([^\"]*)\"", tag)
            actions.append(html.unescape(found.group(1)) if found else "")
    return actions
