"""The task list: each filter, bad filter values, and keyset pages that show every row once."""

import html
import re
import uuid
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from conveyor.core.models import TaskRecord, TaskStatus
from services.web.dashboard import filters
from tests.dashboard.conftest import error, failed_task, listed, make_task, messages_of

pytestmark = pytest.mark.django_db

URL = reverse("dashboard:tasks")


def shown(client, **params):
    response = client.get(URL, params)
    assert response.status_code == 200
    return response, set(listed(response))


# --- filters --------------------------------------------------------------------------------


def test_no_filter_lists_every_task_newest_first(viewer):
    # Given three tasks enqueued one after another
    now = timezone.now()
    tasks = [make_task(enqueued_at=now - timedelta(minutes=m)) for m in (3, 2, 1)]
    # When the list is opened
    response = viewer.get(URL)
    # Then all three, newest first
    assert listed(response) == [str(t.id) for t in reversed(tasks)]


def test_filter_by_status(viewer):
    # Given tasks of every status
    by_status = {status: make_task(status=status) for status in TaskStatus.values}
    for status, task in by_status.items():
        # When filtered by one status (READY and RUNNING share an index group, and still differ)
        _, ids = shown(viewer, status=status)
        # Then only the task of that status
        assert ids == {str(task.id)}, status


def test_filter_by_task(viewer):
    add, noop = make_task("demo.tasks.add"), make_task("demo.tasks.noop", args=())
    assert shown(viewer, task="demo.tasks.noop")[1] == {str(noop.id)}
    assert shown(viewer, task="demo.tasks.add")[1] == {str(add.id)}


def test_filter_by_queue(viewer):
    make_task(queue_name="default")
    emails = make_task(queue_name="emails")
    assert shown(viewer, queue="emails")[1] == {str(emails.id)}


def test_filter_by_owner(viewer, make_token):
    # Given tasks of two tokens and one without an owner
    alice, _ = make_token(name="alice")
    bob, _ = make_token(name="bob")
    alices = make_task(owner=alice)
    make_task(owner=bob)
    make_task()
    # When filtered by alice's token id
    _, ids = shown(viewer, owner=str(alice.id))
    # Then only hers
    assert ids == {str(alices.id)}


def test_filter_by_enqueued_time_range(viewer):
    # Given tasks enqueued at 10:00, 11:00 and 12:00 on a day
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    ten, eleven, noon = (make_task(enqueued_at=day + timedelta(hours=h)) for h in (10, 11, 12))
    iso = lambda hours: (day + timedelta(hours=hours)).isoformat()  # noqa: E731
    # Then "since" is inclusive, "until" exclusive, and both together make a window
    assert shown(viewer, since=iso(11))[1] == {str(eleven.id), str(noon.id)}
    assert shown(viewer, until=iso(11))[1] == {str(ten.id)}
    assert shown(viewer, since=iso(10.5), until=iso(11.5))[1] == {str(eleven.id)}


def test_a_datetime_local_value_is_read_in_the_server_time_zone(viewer):
    # Given a task enqueued at 10:00 local time, and one at 12:00
    local = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    make_task(enqueued_at=local + timedelta(hours=10))
    noon = make_task(enqueued_at=local + timedelta(hours=12))
    # When filtered as a browser's datetime-local input sends it (no offset)
    _, ids = shown(viewer, since=(local + timedelta(hours=11)).strftime("%Y-%m-%dT%H:%M"))
    # Then only the later one
    assert ids == {str(noon.id)}


def test_text_search_finds_text_in_the_arguments(viewer):
    hit = make_task(args=["invoice-needle-42"])
    kwargs_hit = make_task(args=(), kwargs={"ref": "invoice-needle-42"})
    make_task(args=["something else"])
    assert shown(viewer, q="needle-42")[1] == {str(hit.id), str(kwargs_hit.id)}


def test_text_search_finds_text_in_the_error(viewer):
    hit = failed_task(errors=[error(message="connection to smtp.example.com refused")])
    make_task(args=["smtp"])  # "smtp" alone, not the phrase
    failed_task(errors=[error(message="timeout")])
    assert shown(viewer, q="smtp.example.com refused")[1] == {str(hit.id)}


def test_text_search_finds_text_in_the_failure_reason(viewer):
    hit = failed_task(errors=[], failure_reason="dead-lettered: worker died 3 times")
    failed_task()
    assert shown(viewer, q="worker died")[1] == {str(hit.id)}


def test_filter_by_exception_class_of_the_latest_error(viewer):
    # Given tasks whose latest error differs (one had a KeyError first, then a ValueError)
    value = failed_task(exception="builtins.ValueError")
    later_value = failed_task(errors=[error("builtins.KeyError", n=1), error("builtins.ValueError", n=2)])
    failed_task(exception="builtins.KeyError")
    failed_task(errors=[error("builtins.ValueError", n=1), error("builtins.KeyError", n=2)])
    # When filtered by the exception class
    _, ids = shown(viewer, exception="builtins.ValueError")
    # Then the tasks whose latest error is of that class
    assert ids == {str(value.id), str(later_value.id)}


def test_searching_a_task_id_finds_that_task(viewer):
    wanted = make_task()
    make_task()
    assert shown(viewer, q=str(wanted.id))[1] == {str(wanted.id)}


def test_filters_combine(viewer):
    hit = failed_task("demo.tasks.add", queue_name="emails")
    failed_task("demo.tasks.noop", queue_name="emails")
    failed_task("demo.tasks.add", queue_name="default")
    make_task("demo.tasks.add", queue_name="emails")
    assert shown(viewer, status="FAILED", task="demo.tasks.add", queue="emails")[1] == {str(hit.id)}


def test_an_active_filter_shows_how_many_match(viewer):
    for _ in range(3):
        failed_task()
    make_task()
    response = viewer.get(URL, {"status": "FAILED"})
    assert re.search(r'id="matching">\s*3 task\(s\) match\.', response.content.decode())


@pytest.mark.parametrize(
    ("params", "warning"),
    [
        ({"status": "EXPLODED"}, "Filter ignored: unknown status 'EXPLODED'"),
        ({"since": "yesterday-ish"}, "Filter ignored: since: not a date and time"),
        ({"until": "2026-13-45T99:00"}, "Filter ignored: until: not a date and time"),
        ({"owner": "alice"}, "Filter ignored: owner: a token id"),
        # Found by a new-user run: each of these answered 500.
        ({"since": "0001-01-01T00:00+05:00"}, "Filter ignored: since: not a date and time"),
        ({"until": "9999-12-31T23:00-05:00"}, "Filter ignored: until: not a date and time"),
        ({"owner": "99999999999999999999999"}, "Filter ignored: owner: a token id"),
    ],
    ids=[
        "status",
        "since",
        "until-out-of-range",
        "owner",
        "since-before-year-1-in-utc",
        "until-past-9999-in-utc",
        "owner-past-bigint",
    ],
)
def test_an_invalid_filter_value_is_ignored_with_a_warning(viewer, params, warning):
    # Given two tasks
    tasks = {str(make_task().id), str(failed_task().id)}
    # When the list is asked for with a value that cannot be a filter
    response, ids = shown(viewer, **params)
    # Then the page answers, with every task (that filter ignored) and a warning shown
    assert ids == tasks
    assert warning in messages_of(response)
    assert html.escape(warning).encode() in response.content


def test_a_valid_filter_next_to_an_invalid_one_still_applies(viewer):
    failed = failed_task()
    make_task()
    response, ids = shown(viewer, status="FAILED", since="garbage")
    assert ids == {str(failed.id)}
    assert "Filter ignored: since: not a date and time" in messages_of(response)


@pytest.mark.parametrize("name", ["q", "task", "queue", "exception"])
def test_u0000_in_a_filter_is_a_400_not_a_server_error(viewer, name):
    # When the list is asked for with U+0000 in a filter (PostgreSQL's text cannot hold it)
    response = viewer.get(URL, {name: "a\x00b"})
    # Then 400, not 500
    assert response.status_code == 400


# --- keyset pages ---------------------------------------------------------------------------


def next_link(response):
    found = re.search(r'<a href="([^"]+)" id="next-page">', response.content.decode())
    return html.unescape(found.group(1)) if found else None


def walk(client, url):
    """Every row of every page from `url` on, following the "older" links; (rows, pages)."""
    rows, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        rows += listed(response)
        pages += 1
        url = next_link(response)
        assert pages < 20, "the next links never end"
    return rows, pages


def test_pages_visit_every_row_once_in_list_order_with_ties(viewer):
    # Given 130 tasks, many of them enqueued at the very same instants, spanning page boundaries
    base = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    instants = [base + timedelta(seconds=s) for s in (0, 1, 2)]
    for n in range(130):
        at = instants[n % 3] if n < 120 else base + timedelta(seconds=10 + n)
        make_task(enqueued_at=at)
    expected = [
        str(task_id)
        for _, task_id in sorted(TaskRecord.objects.values_list("enqueued_at", "id"), key=lambda r: r, reverse=True)
    ]
    # When an operator follows the "older" links from page 1
    rows, pages = walk(viewer, URL)
    # Then every row once, in (enqueued_at desc, id desc) order, over three pages of at most 50
    assert filters.PAGE_SIZE == 50
    assert pages == 3
    assert rows == expected


def test_pages_keep_the_filter(viewer):
    # Given 60 FAILED tasks and 60 READY ones interleaved
    base = timezone.now() - timedelta(hours=1)
    failed = []
    for n in range(60):
        failed.append(failed_task(enqueued_at=base + timedelta(seconds=2 * n)))
        make_task(enqueued_at=base + timedelta(seconds=2 * n + 1))
    # When the FAILED ones are paged through
    rows, pages = walk(viewer, f"{URL}?status=FAILED")
    # Then page 2 is still FAILED only
    assert pages == 2
    assert rows == [str(t.id) for t in reversed(failed)]


def test_exactly_one_page_has_no_next_link(viewer):
    for _ in range(filters.PAGE_SIZE):
        make_task()
    response = viewer.get(URL)
    assert len(listed(response)) == filters.PAGE_SIZE
    assert next_link(response) is None


def test_the_next_page_link_offers_a_way_back_to_the_newest(viewer):
    for _ in range(filters.PAGE_SIZE + 1):
        make_task()
    second = viewer.get(next_link(viewer.get(URL)))
    assert len(listed(second)) == 1
    assert f'<a href="{URL}">« newest</a>'.encode() in second.content


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "|",
        "2026-01-01T00:00:00+00:00|not-a-uuid",
        f"not-a-date|{uuid.uuid4()}",
        "2026-99-99T00:00|x",
        f"9999-12-31T23:00-05:00|{uuid.uuid4()}",
    ],
)
def test_a_garbage_cursor_answers_the_first_page(viewer, cursor):
    # Given two tasks
    tasks = [make_task(), make_task()]
    # When the list is asked for after a cursor that is not one
    response = viewer.get(URL, {"after": cursor})
    # Then 200 with the first page
    assert response.status_code == 200
    assert set(listed(response)) == {str(t.id) for t in tasks}


def test_rows_arriving_meanwhile_do_not_shift_the_next_page(viewer):
    # Given 60 tasks and the first page read
    base = timezone.now() - timedelta(hours=1)
    tasks = [make_task(enqueued_at=base + timedelta(seconds=n)) for n in range(60)]
    link = next_link(viewer.get(URL))
    # When ten new tasks arrive before the next page is read
    for _ in range(10):
        make_task()
    # Then the next page still starts right after the last row shown
    assert listed(viewer.get(link)) == [str(t.id) for t in reversed(tasks[:10])]
