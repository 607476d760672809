"""The durable insert: every accepted task gets its row and its outbox entry, both paths."""

import pytest
from django.conf import settings

from conveyor import submission
from conveyor.core.models import OutboxEntry, TaskRecord

pytestmark = pytest.mark.django_db


@pytest.fixture
def handed_over(monkeypatch):
    """What submission hands to the publisher after commit (no broker in unit tests)."""
    from conveyor.publisher import publisher

    entries = []
    monkeypatch.setattr(publisher, "hand_over", entries.extend)
    return entries


def noop_records(count):
    return [submission.prepare(submission.TaskSpec("demo.tasks.noop", [], {})) for _ in range(count)]


@pytest.mark.parametrize("count", [1, 3, settings.CONVEYOR_MAX_BATCH + 1], ids=["one", "few", "over-batch-limit"])
def test_each_task_gets_its_outbox_entry_leased_to_the_publisher(
    django_capture_on_commit_callbacks, handed_over, count
):
    # Given prepared tasks, up to and past the size one statement takes
    records = noop_records(count)
    # When they are submitted and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        submission.submit_many(records)
    # Then each row has exactly one outbox entry, and the publisher got each entry with its task, in order
    entries = OutboxEntry.objects.in_bulk([entry.pk for entry in handed_over])
    assert [entry.task.id for entry in handed_over] == [record.id for record in records]
    assert all(entries[entry.pk].task_id == entry.task.id for entry in handed_over)
    assert all(entry.locked_until is not None for entry in handed_over)
    assert TaskRecord.objects.count() == OutboxEntry.objects.count() == count
    # And the records are saved model instances, as bulk_create leaves them
    assert not any(record._state.adding for record in records)
