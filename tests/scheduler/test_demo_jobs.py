"""The demo schedules' tasks: the 8:00 digest email and the purge of old finished tasks."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from conveyor.core.tasks import purge_finished_tasks
from demo.tasks import send_daily_digest

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def record(status, finished_days_ago):
    finished = None if finished_days_ago is None else timezone.now() - timedelta(days=finished_days_ago)
    return TaskRecord.objects.create(task_path="demo.tasks.noop", status=status, finished_at=finished)


def test_purge_deletes_only_finished_tasks_older_than_the_retention(settings):
    settings.CONVEYOR_TASK_RETENTION_DAYS = 30
    old = [record(s, 31) for s in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED, TaskStatus.CANCELLED)]
    kept = [record(TaskStatus.SUCCESSFUL, 29), record(TaskStatus.READY, None), record(TaskStatus.RUNNING, None)]
    result = purge_finished_tasks.call()
    assert result["deleted_tasks"] == 3 and result["older_than_days"] == 30
    remaining = set(TaskRecord.objects.values_list("id", flat=True))
    assert remaining == {r.id for r in kept} and not remaining & {r.id for r in old}


def test_purge_age_can_be_given_per_schedule():
    record(TaskStatus.SUCCESSFUL, 2)
    assert purge_finished_tasks.call(older_than_days=1)["deleted_tasks"] == 1


def test_the_digest_emails_each_active_user_separately():
    users = get_user_model().objects
    users.create_user("ann", "ann@example.com")
    users.create_user("bob", "bob@example.com")
    users.create_user("gone", "gone@example.com", is_active=False)
    users.create_user("nomail", "")
    assert send_daily_digest.call() == {"sent": 2}
    assert sorted(tuple(m.to) for m in mail.outbox) == [("ann@example.com",), ("bob@example.com",)]
