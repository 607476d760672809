"""The queues page (pause, resume, RabbitMQ's figures) and the workers page (quiet, take work again)."""

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from conveyor import queues, workers
from conveyor.core.models import QueueState, WorkerProcess
from tests.dashboard.conftest import fixed_figures, messages_of

pytestmark = pytest.mark.django_db

QUEUES = reverse("dashboard:queues")
WORKERS = reverse("dashboard:workers")


def queue_row(content, name):
    found = re.search(rf'<tr data-queue="{name}".*?</tr>', content, re.S)
    assert found, name
    return found.group(0)


# --- queues ---------------------------------------------------------------------------------


def test_pause_records_the_paused_state_and_who_paused(operator):
    # When an operator pauses the "emails" queue
    response = operator.post(reverse("dashboard:queue-pause", args=["emails"]))
    # Then a QueueState row says it is paused, by whom
    state = QueueState.objects.get(name="emails")
    assert state.paused
    assert state.changed_by == "operator (dashboard)"
    assert response.url == QUEUES
    assert messages_of(response)[0].startswith("Queue emails paused")
    assert queues.paused() == {"emails"}


def test_a_paused_queue_shows_paused_with_a_resume_button(operator):
    queues.pause("emails", by="someone")
    content = operator.get(QUEUES).content.decode()
    assert "PAUSED" in queue_row(content, "emails")
    assert reverse("dashboard:queue-resume", args=["emails"]) in queue_row(content, "emails")
    assert "PAUSED" not in queue_row(content, "default")
    assert reverse("dashboard:queue-pause", args=["default"]) in queue_row(content, "default")


def test_resume_clears_the_paused_state(operator):
    # Given a paused queue
    queues.pause("emails", by="someone")
    # When it is resumed
    response = operator.post(reverse("dashboard:queue-resume", args=["emails"]))
    # Then it is running again, and shown so
    assert not QueueState.objects.get(name="emails").paused
    assert messages_of(response) == ["Queue emails resumed."]
    assert "PAUSED" not in queue_row(operator.get(QUEUES).content.decode(), "emails")


@pytest.mark.parametrize("action", ["queue-pause", "queue-resume"])
def test_an_unknown_queue_is_an_error_and_creates_nothing(operator, action):
    # When a queue that is not configured is paused or resumed
    response = operator.post(reverse(f"dashboard:{action}", args=["no-such-queue"]))
    # Then an error message, and no state row
    assert response.url == QUEUES
    assert messages_of(response) == ["no queue 'no-such-queue'; the queues are " + ", ".join(settings.CONVEYOR_QUEUES)]
    assert [m.level_tag for m in response.wsgi_request._messages] == ["error"]
    assert not QueueState.objects.exists()


def test_pause_goes_back_to_the_page_it_was_pressed_on(operator):
    response = operator.post(reverse("dashboard:queue-pause", args=["emails"]), {"next": "/dashboard/"})
    assert response.url == "/dashboard/"


@pytest.mark.parametrize("next_url", ["https://evil.example.com/", "//evil.example.com/dashboard/", "/admin/"])
def test_pause_never_goes_back_off_the_dashboard(operator, next_url):
    response = operator.post(reverse("dashboard:queue-pause", args=["emails"]), {"next": next_url})
    assert response.url == QUEUES


def test_rabbitmq_figures_are_shown_per_queue(viewer, queue_figures):
    # Given RabbitMQ's figures: 42 ready in "images"
    queue_figures.set(fixed_figures(default=0, emails=3, images=42, reports=0))
    # Then the queues page shows them
    content = viewer.get(QUEUES).content.decode()
    assert '<td class="num queue-ready">42</td>' in queue_row(content, "images")
    assert '<td class="num queue-ready">3</td>' in queue_row(content, "emails")
    assert "could not be read" not in content


def test_unreadable_rabbitmq_figures_are_shown_as_unknown(viewer, queue_figures):
    queue_figures.set(None)
    content = viewer.get(QUEUES).content.decode()
    assert '<td class="num queue-ready">?</td>' in queue_row(content, "images")
    assert "RabbitMQ's figures could not be read just now" in content


# --- workers --------------------------------------------------------------------------------


@pytest.fixture
def worker(db):
    me = workers.identity()
    workers.register(me, threads=4, queues=["default", "emails"])
    return me.id


def worker_row(content, worker_id):
    found = re.search(rf'<tr data-worker="{re.escape(worker_id)}".*?</tr>', content, re.S)
    assert found, worker_id
    return found.group(0)


def test_quiet_asks_a_worker_to_take_nothing_new(operator, worker):
    # When an operator quiets a worker process
    response = operator.post(reverse("dashboard:worker-quiet", args=[worker]), {"quiet": "true"})
    # Then its row says so (its heartbeat reads it), and the page shows QUIET and "take work again"
    assert WorkerProcess.objects.get(id=worker).quiet
    assert response.url == WORKERS
    assert messages_of(response)[0].startswith(f"{worker}: quiet")
    row = worker_row(operator.get(WORKERS).content.decode(), worker)
    assert "QUIET" in row
    assert 'name="quiet" value="false"' in row


def test_take_work_again_clears_quiet(operator, worker):
    workers.set_quiet(worker, True)
    response = operator.post(reverse("dashboard:worker-quiet", args=[worker]), {"quiet": "false"})
    assert not WorkerProcess.objects.get(id=worker).quiet
    assert messages_of(response) == [f"{worker}: takes work again."]
    assert "QUIET" not in worker_row(operator.get(WORKERS).content.decode(), worker)


def test_quieting_a_gone_worker_is_an_error(operator, worker):
    # Given a worker that stopped (its row is gone)
    WorkerProcess.objects.filter(id=worker).delete()
    # When it is quieted
    response = operator.post(reverse("dashboard:worker-quiet", args=[worker]), {"quiet": "true"})
    # Then an error, and no row comes back
    assert messages_of(response) == [f"{worker}: no such worker process (it stopped)."]
    assert not WorkerProcess.objects.exists()


def test_a_worker_past_its_lease_is_shown_late(viewer, worker, settings):
    WorkerProcess.objects.filter(id=worker).update(
        seen_at=timezone.now() - timedelta(seconds=settings.CONVEYOR_WORKER_LEASE_SECONDS + 5)
    )
    assert "LATE" in worker_row(viewer.get(WORKERS).content.decode(), worker)


def test_what_a_worker_runs_links_to_the_task(viewer, worker):
    task_id = "11111111-2222-3333-4444-555555555555"
    WorkerProcess.objects.filter(id=worker).update(
        running=[{"id": task_id, "task": "demo.tasks.sleep", "queue": "default", "started_at": "now"}]
    )
    row = worker_row(viewer.get(WORKERS).content.decode(), worker)
    assert f'href="{reverse("dashboard:task", args=[task_id])}"' in row


@pytest.mark.parametrize("value", ["maybe", ""])
def test_quiet_takes_only_true_or_false(operator, value):
    # Given a live worker
    process = WorkerProcess.objects.create(
        id="host:abc:1", hostname="host", pid=1, started_at=timezone.now(), seen_at=timezone.now()
    )
    # When quiet is posted with another value
    operator.post(reverse("dashboard:worker-quiet", args=[process.id]), {"quiet": value})
    # Then the worker is left as it was
    process.refresh_from_db()
    assert process.quiet is False


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("dashboard:schedule-run", ["a\x00b"]),
        ("dashboard:schedule-enabled", ["a\x00b"]),
        ("dashboard:worker-quiet", ["a\x00b"]),
    ],
)
def test_u0000_in_a_path_is_a_400_not_a_server_error(operator, name, args):
    # When an action is posted for a name holding U+0000 (PostgreSQL's text cannot hold it)
    response = operator.post(reverse(name, args=args), {"enabled": "true", "quiet": "true"})
    # Then 400, not 500
    assert response.status_code == 400
