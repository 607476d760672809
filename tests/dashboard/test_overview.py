"""The overview: bounded counts (exact, or the planner's labelled estimate) and the throughput series."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conveyor import throughput
from conveyor.core.models import TaskRecord, TaskStatus
from services.web.dashboard import counts, filters
from tests.dashboard.conftest import failed_task, make_task

pytestmark = pytest.mark.django_db


# --- counts ---------------------------------------------------------------------------------


def test_a_count_up_to_the_bound_is_exact():
    # Given five tasks
    for _ in range(5):
        make_task()
    # When counted with a bound of 5
    count = counts.bounded(TaskRecord.objects.all(), exact_up_to=5)
    # Then the exact number, shown plainly
    assert count == counts.Count(5, True)
    assert str(count) == "5"


def test_a_count_above_the_bound_is_an_estimate_never_below_the_bound():
    # Given six tasks
    for _ in range(6):
        make_task()
    # When counted with a bound of 5
    count = counts.bounded(TaskRecord.objects.all(), exact_up_to=5)
    # Then an estimate, labelled, and more than the bound
    assert not count.exact
    assert count.value >= 6
    assert str(count).startswith("≈ ")


def test_the_bound_counts_only_the_rows_of_the_query():
    for _ in range(6):
        make_task()
    failed_task()
    assert counts.bounded(TaskRecord.objects.filter(status=TaskStatus.FAILED), exact_up_to=5) == counts.Count(1, True)


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (counts.Count(12_345, True), "12,345"),
        (counts.Count(999, False), "≈ 999"),
        (counts.Count(15_400, False), "≈ 15k"),
        (counts.Count(2_500_000, False), "≈ 2.5M"),
    ],
)
def test_how_a_count_reads(count, shown):
    assert str(count) == shown


def test_the_overview_shows_exact_counts_below_the_bound_and_labelled_estimates_above(viewer, monkeypatch):
    # Given a bound of 2, three FAILED tasks and one READY
    monkeypatch.setattr(counts, "EXACT_UP_TO", 2)
    for _ in range(3):
        failed_task()
    make_task()
    # When the overview is opened
    content = viewer.get(reverse("dashboard:overview")).content.decode()
    # Then READY is exact, FAILED an estimate marked "≈"
    shown = dict(re.findall(r'<b data-status="(\w+)">([^<]*)</b>', content))
    assert shown["READY"] == "1"
    assert shown["SUCCESSFUL"] == "0"
    assert shown["FAILED"].startswith("≈ ")


def test_the_task_list_marks_an_estimated_match_count(viewer, monkeypatch):
    # Given more matches than one page holds and than are counted exactly
    monkeypatch.setattr(counts, "EXACT_UP_TO", 2)
    monkeypatch.setattr(filters, "PAGE_SIZE", 2)
    for _ in range(3):
        failed_task()
    content = viewer.get(reverse("dashboard:tasks"), {"status": "FAILED"}).content.decode()
    assert re.search(r'id="matching">≈ \d+ task\(s\) match \(an estimate\)\.', content)


def test_a_filter_whose_matches_fit_one_page_counts_them_exactly(viewer, monkeypatch):
    # Given fewer matches than a page holds (even above the exact-count bound)
    monkeypatch.setattr(counts, "EXACT_UP_TO", 2)
    for _ in range(3):
        failed_task()
    # When the filtered list is shown; Then the page's own rows are the exact count
    content = viewer.get(reverse("dashboard:tasks"), {"status": "FAILED"}).content.decode()
    assert 'id="matching">3 task(s) match.' in content


def test_the_overview_counts_each_status_apart(viewer):
    make_task(status=TaskStatus.RUNNING)
    make_task(status=TaskStatus.RUNNING)
    make_task()
    content = viewer.get(reverse("dashboard:overview-fragment")).content.decode()
    shown = dict(re.findall(r'<b data-status="(\w+)">([^<]*)</b>', content))
    assert shown == {"READY": "1", "RUNNING": "2", "SUCCESSFUL": "0", "FAILED": "0", "CANCELLED": "0"}


# --- series.json ----------------------------------------------------------------------------


def series(client):
    response = client.get(reverse("dashboard:series"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    return response.json()


def test_series_has_a_bucket_every_ten_seconds_over_the_last_hour_with_zeros(viewer):
    # Given no run ended at all
    # When the series is read
    body = series(viewer)
    # Then one point per 10 s bucket over the hour, all zero
    at = body["at"]
    assert body["bucket_seconds"] == throughput.BUCKET_SECONDS == 10
    assert 360 <= len(at) <= 361
    assert all(b - a == 10 for a, b in zip(at, at[1:], strict=False))
    assert abs(at[-1] - timezone.now().timestamp()) <= 10
    assert set(body["processed"]) == {0} and set(body["failed"]) == {0}
    assert body["totals"] == {"processed": 0, "failed": 0}


def test_series_sums_the_buckets_of_several_workers(viewer):
    # Given two workers that ended runs in the same bucket five minutes ago, and one ten minutes ago
    five = timezone.now() - timedelta(minutes=5)
    ten = timezone.now() - timedelta(minutes=10)
    throughput.add("worker-a", processed=30, failed=2, at=five)
    throughput.add("worker-b", processed=20, failed=1, at=five)
    throughput.add("worker-b", processed=10, failed=0, at=ten)
    # When the series is read
    body = series(viewer)
    points = dict(zip(body["at"], zip(body["processed"], body["failed"], strict=True), strict=True))
    # Then the shared bucket sums both workers (per second), the others are zero
    assert points[int(throughput.bucket(five).timestamp())] == (5.0, 0.3)
    assert points[int(throughput.bucket(ten).timestamp())] == (1.0, 0.0)
    nonzero = [at for at, (processed, failed) in points.items() if processed or failed]
    assert len(nonzero) == 2
    assert body["totals"] == {"processed": 60, "failed": 3}


def test_series_leaves_out_runs_older_than_the_hour(viewer):
    throughput.add("worker-a", processed=99, failed=9, at=timezone.now() - timedelta(hours=1, minutes=5))
    assert series(viewer)["totals"] == {"processed": 0, "failed": 0}
