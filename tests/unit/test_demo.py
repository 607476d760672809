"""The demo tasks from the seed documents, run by a worker (StubBroker, real database)."""

import io

import pytest
from django.core import mail
from django.core.files.storage import default_storage
from PIL import Image

from conveyor.core.models import TaskRecord, TaskStatus
from tests.conftest import publish_pending_outbox

pytestmark = pytest.mark.django_db(transaction=True)


def run_queue(stub_broker, stub_worker, queue):
    publish_pending_outbox()
    stub_broker.join(queue, fail_fast=False)
    stub_worker.join()


def test_feedback_form_answers_at_once_and_a_worker_sends_the_email(client, stub_broker, stub_worker):
    # Given the feedback page
    page = client.get("/demo/feedback/")
    assert page.status_code == 200
    # When a visitor posts feedback
    response = client.post("/demo/feedback/", {"email": "ada@example.com", "message": "Lovely queue"})
    # Then the page answers before any email is sent, naming the task
    assert response.status_code == 202
    assert mail.outbox == []
    record = TaskRecord.objects.get(task_path="demo.tasks.send_email")
    assert str(record.id) in response.content.decode()
    # And a worker sends it through Django's email framework
    run_queue(stub_broker, stub_worker, "emails")
    record.refresh_from_db()
    assert record.status == TaskStatus.SUCCESSFUL
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Feedback from ada@example.com"
    assert "Lovely queue" in mail.outbox[0].body


def test_feedback_form_with_bad_email_enqueues_nothing(client):
    response = client.post("/demo/feedback/", {"email": "not-an-email", "message": "hi"})
    assert response.status_code == 200
    assert TaskRecord.objects.count() == 0


def png_bytes(size=(600, 400)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "me.png"
    return buffer


def test_uploaded_profile_picture_gets_thumbnails_from_a_worker(api, stub_broker, stub_worker):
    # Given a profile picture uploaded over HTTP
    response = api.post("/api/v1/demo/profile-pictures", {"image": png_bytes()})
    assert response.status_code == 202, response.content
    task_id = response.json()["id"]
    # When a worker runs the thumbnail task
    run_queue(stub_broker, stub_worker, "images")
    # Then resized JPEGs exist in storage, no larger than each requested size, and progress is complete
    record = TaskRecord.objects.get(id=task_id)
    assert record.status == TaskStatus.SUCCESSFUL, record.errors
    assert record.progress == {"done": 3, "total": 3}
    for size, path in record.return_value["thumbnails"].items():
        with default_storage.open(path) as handle:
            image = Image.open(handle)
            assert max(image.size) == int(size)
            assert image.format == "JPEG"


def test_upload_that_is_not_an_image_is_400_and_queues_nothing(api):
    fake = io.BytesIO(b"#!/bin/sh\necho not an image\n")
    fake.name = "evil.png"
    response = api.post("/api/v1/demo/profile-pictures", {"image": fake})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_image"
    assert TaskRecord.objects.count() == 0


def test_csv_report_is_written_through_storage(stub_broker, stub_worker):
    from demo import tasks

    tasks.add.enqueue(1, 2)
    result = tasks.csv_report.enqueue(days=1)
    run_queue(stub_broker, stub_worker, "default")
    run_queue(stub_broker, stub_worker, "reports")
    fetched = tasks.csv_report.get_result(result.id)
    with default_storage.open(fetched.return_value["path"]) as handle:
        lines = handle.read().decode().splitlines()
    assert lines[0] == "day,task,status,count"
    assert any("demo.tasks.add" in line for line in lines[1:])
