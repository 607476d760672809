"""Failures retrying cannot fix fail at once; retried tasks keep a bounded history; uploads and
thumbnails are bounded."""

import io

import pytest
from django.utils import timezone
from PIL import Image

from conveyor import states, submission
from conveyor.core.models import TaskRecord, TaskStatus
from tests.conftest import publish_pending_outbox

pytestmark = pytest.mark.django_db(transaction=True)


def run(stub_broker, stub_worker, path, *args, queue="default", **kwargs):
    record = submission.prepare(submission.TaskSpec(task_path=path, args=list(args), kwargs=kwargs))
    record = submission.submit_many([record])[0]
    publish_pending_outbox()
    stub_broker.join(queue, fail_fast=False)
    stub_worker.join()
    record.refresh_from_db()
    return record


def test_a_path_outside_the_media_folder_fails_at_once(stub_broker, stub_worker):
    # Given a thumbnail task for a path outside the storage (Django raises SuspiciousFileOperation)
    record = run(stub_broker, stub_worker, "demo.tasks.thumbnail", "../../etc/passwd", queue="images")
    # Then it is FAILED after one attempt, saying it is not retryable
    assert (record.status, record.attempts) == (TaskStatus.FAILED, 1)
    assert record.errors[0]["exception_class_path"] == "django.core.exceptions.SuspiciousFileOperation"
    assert "not retryable" in record.failure_reason


def test_a_task_that_rejects_its_arguments_fails_at_once(stub_broker, stub_worker):
    # Given thumbnail sizes over the bound (the task raises conveyor.errors.TaskRejected)
    record = run(stub_broker, stub_worker, "demo.tasks.thumbnail", "x.png", [100_000], queue="images")
    # Then it is FAILED after one attempt, not retried
    assert (record.status, record.attempts) == (TaskStatus.FAILED, 1)
    assert record.errors[0]["exception_class_path"] == "conveyor.errors.TaskRejected"


def test_a_task_failing_again_and_again_keeps_the_first_and_the_latest_errors(db):
    # Given a task that failed 25 attempts in a row (a retry cycle repeated by hand)
    record = TaskRecord.objects.create(task_path="demo.tasks.add", args=[1, 2], kwargs={})
    for attempt in range(1, 26):
        TaskRecord.objects.filter(id=record.id).update(status=TaskStatus.READY)
        states.claim([str(record.id)], "worker-a")
        error = {"exception_class_path": "x.Boom", "message": f"attempt {attempt}", "traceback": "", "attempt": attempt}
        states.finish([states.Outcome(str(record.id), TaskStatus.FAILED, error=error, reason="boom")], "worker-a")
    # Then its row keeps 20 errors (the first 3 and the latest 17), counts the 5 left out,
    # and keeps a bounded list of workers
    record.refresh_from_db()
    kept = [e["attempt"] for e in record.errors]
    assert kept == [1, 2, 3, *range(9, 26)]
    assert record.dropped_errors == 5
    assert len(record.worker_ids) == states.MAX_WORKER_IDS
    assert record.attempts == 25


def test_the_task_list_shows_the_latest_error_and_the_count(api):
    errors = [{"exception_class_path": "x.Boom", "message": str(i), "traceback": "t"} for i in range(3)]
    record = TaskRecord.objects.create(
        task_path="demo.tasks.add",
        args=[1, 2],
        kwargs={},
        owner=api.token,
        status=TaskStatus.FAILED,
        errors=errors,
        dropped_errors=4,
        finished_at=timezone.now(),
    )
    item = api.get("/api/v1/tasks").json()["items"][0]
    assert ([e["message"] for e in item["errors"]], item["error_count"]) == (["2"], 7)
    detail = api.get(f"/api/v1/tasks/{record.id}").json()
    assert ([e["message"] for e in detail["errors"]], detail["error_count"]) == (["0", "1", "2"], 7)


def png(width, height):
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")  # a bilevel image compresses to almost nothing
    buffer.seek(0)
    buffer.name = "big.png"
    return buffer


def test_an_image_with_too_many_pixels_is_refused_before_anything_is_decoded(api, settings):
    # Given a 12000 x 12000 PNG: small on the wire, 144 million pixels decoded
    image = png(12000, 12000)
    assert len(image.getvalue()) < settings.CONVEYOR_MAX_UPLOAD_BYTES
    # When it is uploaded; Then 400 naming the limit, and nothing is queued
    response = api.post("/api/v1/demo/profile-pictures", {"image": image})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "image_too_large"
    assert not TaskRecord.objects.exists()


def test_the_mail_server_has_a_timeout_below_the_mail_tasks_time_limit(settings, monkeypatch):
    # Given the SMTP configuration a deployment uses
    monkeypatch.setenv("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    import importlib

    import config.settings as config_settings

    reloaded = importlib.reload(config_settings)
    try:
        from conveyor import catalog

        timeout = reloaded.MAILERS["default"]["OPTIONS"]["timeout"]
        # Then a mail server that stops answering fails an attempt before the task's own limit
        assert 0 < timeout < catalog.get("demo.tasks.send_email").time_limit
    finally:
        monkeypatch.delenv("DJANGO_EMAIL_BACKEND")
        importlib.reload(config_settings)
