"""The operator dashboard (/dashboard/) with a million task rows: p50 and p99 of every list page.

BENCH_SCALE x 1,000,000 task rows (BENCH_DASHBOARD_ROWS overrides) are written by one
INSERT ... SELECT from generate_series, a mix like a month of a busy system:

- 85% SUCCESSFUL, 8% FAILED (one error dict each, and a failure reason), 4% CANCELLED,
  enqueued over the last 30 days; 2.8% READY and 0.2% RUNNING, enqueued in the last hour,
  of which 0.2% of all rows READY and deferred (run_after up to a day ahead);
- the demo catalog's tasks on their queues (default, emails, images, reports), with
  arguments like the real ones (an e-mail address, a file path, numbers);
- status_group is left to the database trigger of migration 0004 (it fires on INSERT
  too): every row is written as "open" and the fill checks the trigger corrected them;

plus 200 worker processes, two hours of throughput buckets, 5 schedules with 200 fires
each, and a workflow per 100 tasks. Then ANALYZE, and the dashboard is served by the
benchmark's real web service (gunicorn), logged in through /admin/login/ as a staff
superuser. Each page is requested WARMUP times, then REQUESTS times one after another on
one keep-alive connection; every answer must be 200. The pages of the task list are
followed through their "older" links, as an operator clicks them.
"""

import http.client
import re
import secrets
import statistics
import time
from datetime import timedelta
from http.cookies import SimpleCookie
from urllib.parse import urlencode

WARMUP = 3
REQUESTS = 50
PAGE_DEPTH = 20  # the task list page reached through the "older" links
# Proposed bounds on p99 (ms). A plain list page reads one index range and renders 50 rows.
# A text search without a time range may read the whole table: the page's own bound is the
# statement timeout (filters.SEARCH_TIMEOUT_MS, 5 s) after which it answers "too slow".
PLAIN_BOUND_MS = 500
SEARCH_BOUND_MS = 5500

# (slot weight, task path, queue, args SQL (i is the row number)), 20 slots in all.
TASKS = [
    (3, "demo.tasks.noop", "default", "'[]'::jsonb"),
    (4, "demo.tasks.add", "default", "jsonb_build_array(i %% 1000, i %% 97)"),
    (
        4,
        "demo.tasks.send_email",
        "emails",
        "jsonb_build_array('user' || i || '@example.com', 'Order ' || i || ' shipped', 'Your order is on its way.')",
    ),
    (3, "demo.tasks.thumbnail", "images", "jsonb_build_array('/uploads/' || i || '.jpg', jsonb_build_array(64, 256))"),
    (1, "demo.tasks.total", "default", "jsonb_build_array(jsonb_build_array(i %% 10, i %% 11, i %% 12))"),
    (1, "demo.tasks.csv_report", "reports", "jsonb_build_array(1 + i %% 30)"),
    (1, "demo.tasks.sleep", "default", "'[0.1]'::jsonb"),
    (1, "demo.tasks.fail", "default", "'[\"demo failure\"]'::jsonb"),
    (1, "demo.tasks.flaky", "default", "jsonb_build_array(i %% 3)"),
    (1, "demo.tasks.send_daily_digest", "emails", '\'[["ops@example.com", "team@example.com"]]\'::jsonb'),
]
EXCEPTIONS = ("builtins.RuntimeError", "smtplib.SMTPServerDisconnected", "builtins.TimeoutError")
REASONS = ("gave up after 3 attempts", "time limit exceeded", "dead-lettered: worker died 3 times")
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/app/conveyor/runtime.py", line 212, in run\n    value = entry.task.call(*args, **kwargs)\n'
    '  File "/app/.venv/lib/python3.12/site-packages/django/tasks/base.py", line 160, in call\n'
    "    return self.func(*args, **kwargs)\n"
    '  File "/app/demo/tasks.py", line 48, in send_email\n    connection.send_messages([message])\n'
    '  File "/usr/lib/python3.12/smtplib.py", line 398, in getreply\n'
    '    raise SMTPServerDisconnected("Connection unexpectedly closed")\n'
)


def _slots():
    paths, queues, args = [], [], []
    for weight, path, queue, sql in TASKS:
        paths += [path] * weight
        queues += [queue] * weight
        args += [sql] * weight
    return paths, queues, args


def fill(rows, owner_id):
    """`rows` task rows in one statement, then the smaller tables; ANALYZE. Checks status_group."""
    from django.db import connection

    paths, queues, args_sql = _slots()
    args_case = "CASE slot " + " ".join(f"WHEN {n} THEN {sql}" for n, sql in enumerate(args_sql)) + " END"
    span = timedelta(days=30).total_seconds() / max(rows, 1)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO conveyor_taskrecord (
                id, task_path, queue_name, priority, args, kwargs, status, status_group, attempts,
                return_value, errors, dropped_errors, failure_reason, enqueued_at, run_after, started_at,
                last_attempted_at, finished_at, worker_ids, worker, owner_id, source, backend, worker_deaths, retries)
            SELECT gen_random_uuid(), (%(paths)s::text[])[1 + slot], (%(queues)s::text[])[1 + slot], 0,
                {args_case}, '{{}}', status,
                'open',  -- the trigger of migration 0004 sets it from status; checked below
                CASE WHEN status IN ('READY') THEN 0 WHEN status = 'FAILED' THEN 3 ELSE 1 END,
                CASE WHEN status = 'SUCCESSFUL' THEN jsonb_build_object('ok', true, 'n', i %% 100) ELSE 'null' END,
                CASE WHEN status = 'FAILED' THEN jsonb_build_array(jsonb_build_object(
                    'exception_class_path', (%(exceptions)s::text[])[1 + i %% 3],
                    'message', 'Connection unexpectedly closed (task ' || i || ')',
                    'traceback', %(traceback)s::text,
                    'attempt', 3,
                    'at', to_char(at + interval '50 ms', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
                ELSE '[]' END,
                0,
                CASE WHEN status = 'FAILED' THEN (%(reasons)s::text[])[1 + (i / 3) %% 3]
                     WHEN status = 'CANCELLED' THEN 'cancelled by bench (dashboard)' ELSE '' END,
                at,
                CASE WHEN deferred THEN now() + (i %% 86400) * interval '1 s' END,
                CASE WHEN status <> 'READY' AND status <> 'CANCELLED' THEN at + interval '20 ms' END,
                CASE WHEN status <> 'READY' AND status <> 'CANCELLED' THEN at + interval '20 ms' END,
                CASE WHEN status IN ('SUCCESSFUL', 'FAILED', 'CANCELLED') THEN at + interval '70 ms' END,
                CASE WHEN status IN ('READY', 'CANCELLED') THEN '[]'::jsonb
                     ELSE jsonb_build_array('bench-host-' || i %% 20 || ':w:' || (1000 + i %% 10)) END,
                CASE WHEN status = 'RUNNING' THEN 'bench-host-' || i %% 20 || ':w:' || (1000 + i %% 10) END,
                CASE WHEN i %% 4 <> 0 THEN %(owner)s END,
                CASE WHEN i %% 4 <> 0 THEN 'api' ELSE 'django' END,
                'default', 0, 0
            FROM (
                SELECT i, (hashint4(i) & 2147483647) %% 20 AS slot,
                    CASE WHEN i %% 10000 < 8500 THEN 'SUCCESSFUL' WHEN i %% 10000 < 9300 THEN 'FAILED'
                         WHEN i %% 10000 < 9700 THEN 'CANCELLED' WHEN i %% 10000 < 9980 THEN 'READY'
                         ELSE 'RUNNING' END AS status,
                    i %% 10000 BETWEEN 9700 AND 9719 AS deferred,
                    CASE WHEN i %% 10000 >= 9700 THEN now() - (i %% 3600) * interval '1 s'
                         ELSE now() - i * %(span)s * interval '1 s' END AS at
                FROM generate_series(1, %(rows)s) AS i
            ) AS s
            """,
            {
                "paths": paths,
                "queues": queues,
                "exceptions": list(EXCEPTIONS),
                "reasons": list(REASONS),
                "traceback": TRACEBACK,
                "owner": owner_id,
                "span": span,
                "rows": rows,
            },
        )
        cursor.execute(
            "SELECT count(*) FROM conveyor_taskrecord WHERE status_group <> "
            "CASE WHEN status IN ('READY', 'RUNNING') THEN 'open' ELSE status END"
        )
        wrong = cursor.fetchone()[0]
        if wrong:
            raise RuntimeError(f"{wrong} task rows have a status_group out of step with their status")
        _workers_and_throughput(cursor)
        _workflows(cursor, max(10, rows // 100))
    _schedules()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
        # Write the fill's dirty pages out now, not during the timings (see bench.growth).
        cursor.execute("CHECKPOINT")


def _workers_and_throughput(cursor):
    """200 worker processes (180 alive, each running two tasks), 2 hours of 10 s buckets for 4 of them."""
    cursor.execute(
        """
        INSERT INTO conveyor_workerprocess
            (id, hostname, pid, host_key, pid_started, threads, queues, started_at, seen_at, quiet, running)
        SELECT 'bench-host-' || n % 20 || ':w:' || (1000 + n), 'bench-host-' || n % 20, 1000 + n, 'bench', 0, 8,
            '["default", "emails", "images", "reports"]', now() - interval '3 hours',
            CASE WHEN n % 10 = 0 THEN now() - interval '5 minutes' ELSE now() END, n % 50 = 0,
            jsonb_build_array(
                jsonb_build_object('id', gen_random_uuid(), 'task', 'demo.tasks.thumbnail', 'queue', 'images',
                                   'started_at', now() - interval '2 s'),
                jsonb_build_object('id', gen_random_uuid(), 'task', 'demo.tasks.send_email', 'queue', 'emails',
                                   'started_at', now() - interval '1 s'))
        FROM generate_series(1, 200) AS n
        """
    )
    cursor.execute(
        """
        INSERT INTO conveyor_throughput (at, worker, processed, failed)
        SELECT date_bin('10 s', now(), 'epoch') - b * interval '10 s', 'bench-host-' || w || ':w:' || (1000 + w),
            200 + (b * 7 + w) % 50, (b + w) % 5
        FROM generate_series(0, 719) AS b, generate_series(1, 4) AS w
        """
    )


def _workflows(cursor, count):
    cursor.execute(
        """
        INSERT INTO conveyor_workflow (id, status, owner_id, source, on_failure, spec, result, return_value, error,
            failed_step, step_count, remaining, created_at, finished_at)
        SELECT gen_random_uuid(), CASE WHEN n %% 20 = 0 THEN 'FAILED' ELSE 'SUCCESSFUL' END, NULL, 'api', 'fail',
            '{"chain": [{"task": "demo.tasks.add", "args": [1, 2]}, {"task": "demo.tasks.add", "args": [3]}]}',
            '{"step": 1}', CASE WHEN n %% 20 = 0 THEN NULL ELSE '6'::jsonb END,
            CASE WHEN n %% 20 = 0 THEN 'step 1 failed: builtins.RuntimeError' ELSE '' END,
            CASE WHEN n %% 20 = 0 THEN 1 END, 2, 0,
            now() - n * interval '4 min', now() - n * interval '4 min' + interval '1 s'
        FROM generate_series(1, %s) AS n
        """,
        [count],
    )


def _schedules():
    """5 interval schedules with 200 fires each (the fires name no task: cheap, and the page shows them)."""
    from django.utils import timezone

    from conveyor.scheduling.models import Fire, FireOutcome, Schedule

    now = timezone.now()
    fires = []
    for n, (path, args) in enumerate(
        [
            ("demo.tasks.noop", []),
            ("demo.tasks.csv_report", [7]),
            ("demo.tasks.send_daily_digest", []),
            ("demo.tasks.add", [1, 2]),
            ("demo.tasks.total", [[1, 2, 3]]),
        ]
    ):
        schedule = Schedule.objects.create(
            name=f"bench-dashboard-{n}", task_path=path, args=args, interval_seconds=3600 * (n + 1)
        )
        fires += [
            Fire(
                schedule=schedule,
                fire_time=now - timedelta(hours=(n + 1) * k),
                outcome=FireOutcome.MISSED if k % 25 == 0 else FireOutcome.ENQUEUED,
            )
            for k in range(1, 201)
        ]
    Fire.objects.bulk_create(fires)


def clear():
    """Remove what fill wrote outside the task table (system.reset() empties that one)."""
    from django.db import connection

    from conveyor.core.models import Throughput, WorkerProcess
    from conveyor.scheduling.models import Schedule
    from conveyor.workflows.models import Workflow, WorkflowStep

    WorkerProcess.objects.filter(hostname__startswith="bench-host-").delete()
    Throughput.objects.filter(worker__startswith="bench-host-").delete()
    Schedule.objects.filter(name__startswith="bench-dashboard-").delete()
    # Every workflow: system.reset() already emptied the task table their steps point at.
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {WorkflowStep._meta.db_table}, {Workflow._meta.db_table} CASCADE")


# --- HTTP as a browser: session cookie, CSRF -------------------------------------------


class Browser:
    def __init__(self, port):
        self.port = port
        self.cookies = {}
        self.conn = None

    def _connect(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        return self.conn

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            conn = self._connect()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # gunicorn closed the keep-alive connection between requests: once more on a new one.
                self.close()
                if attempt == 2:
                    raise
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        if response.headers.get("Connection", "").lower() == "close":
            self.close()
        return response.status, response.headers, data

    def login(self, username, password):
        status, _, page = self.request("GET", "/admin/login/")
        if status != 200:
            raise RuntimeError(f"GET /admin/login/ answered {status}")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1).decode()
        form = urlencode(
            {"csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/dashboard/"}
        )
        status, headers, body = self.request(
            "POST", "/admin/login/", form, {"Content-Type": "application/x-www-form-urlencoded"}
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login answered {status} without a session: {body[:300]!r}")


def staff_user():
    """A staff superuser made with the ORM (superuser: every permission, conveyor.view_taskrecord too)."""
    from django.contrib.auth import get_user_model

    username, password = f"bench-dashboard-{secrets.token_hex(3)}", secrets.token_urlsafe(16)
    get_user_model().objects.create_superuser(username, f"{username}@example.com", password)
    return username, password


def timed(browser, path, requests=REQUESTS, warmup=WARMUP):
    """(p50, p99, last body) of sequential GETs of `path`; RuntimeError on any answer other than 200."""
    times, body = [], b""
    for n in range(warmup + requests):
        started = time.perf_counter()
        status, _, body = browser.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        if n >= warmup:
            times.append(elapsed)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))], body


def follow_older(browser, path, pages):
    """The URL of page `pages` of the task list, reached by following the "older" link from `path`."""
    for page in range(1, pages):
        status, _, body = browser.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}")
        found = re.search(rb'<a href="([^"]+)" id="next-page">', body)
        if not found:
            raise RuntimeError(f"page {page} of the task list has no older link")
        path = found.group(1).decode().replace("&amp;", "&")
    return path


def _search_target():
    """One e-mail address in the arguments of a single task about 15 days old, and that task's time."""
    from django.db.models import Q
    from django.utils import timezone

    from conveyor.core.models import TaskRecord

    row = (
        TaskRecord.objects.filter(task_path="demo.tasks.send_email")
        .filter(~Q(status="READY"), enqueued_at__lt=timezone.now() - timedelta(days=15))
        .order_by("-enqueued_at")
        .values("args", "enqueued_at")
        .first()
    )
    return row["args"][0], row["enqueued_at"]


def pages(browser):
    """(name, path, bound in ms, kind) of every page measured."""
    term, at = _search_target()
    since, until = (at - timedelta(hours=12)).isoformat(), (at + timedelta(hours=12)).isoformat()
    tasks = "/dashboard/tasks/"
    exception_group = urlencode(
        {"status": "FAILED", "task": "demo.tasks.send_email", "exception": "smtplib.SMTPServerDisconnected"}
    )
    return [
        ("overview", "/dashboard/", PLAIN_BOUND_MS),
        ("overview fragment (live)", "/dashboard/fragments/overview", PLAIN_BOUND_MS),
        ("series.json", "/dashboard/series.json", PLAIN_BOUND_MS),
        ("tasks, first page", tasks, PLAIN_BOUND_MS),
        ("tasks, status=FAILED", f"{tasks}?status=FAILED", PLAIN_BOUND_MS),
        ("tasks, status=READY", f"{tasks}?status=READY", PLAIN_BOUND_MS),
        ("tasks, task=send_email", f"{tasks}?task=demo.tasks.send_email", PLAIN_BOUND_MS),
        ("tasks, queue=reports", f"{tasks}?queue=reports", PLAIN_BOUND_MS),
        (f"tasks, page {PAGE_DEPTH} (older links)", follow_older(browser, tasks, PAGE_DEPTH), PLAIN_BOUND_MS),
        ("tasks, failed group (exception)", f"{tasks}?{exception_group}", PLAIN_BOUND_MS),
        ("tasks, q=<one address>", f"{tasks}?{urlencode({'q': term})}", SEARCH_BOUND_MS),
        (
            "tasks, q=<one address>, 1-day range",
            f"{tasks}?{urlencode({'q': term, 'since': since, 'until': until})}",
            PLAIN_BOUND_MS,
        ),
        ("tasks, q=example.com (common)", f"{tasks}?q=example.com", PLAIN_BOUND_MS),
        ("failed (grouped)", "/dashboard/failed/", PLAIN_BOUND_MS),
        ("scheduled", "/dashboard/scheduled/", PLAIN_BOUND_MS),
        ("queues", "/dashboard/queues/", PLAIN_BOUND_MS),
        ("workers", "/dashboard/workers/", PLAIN_BOUND_MS),
        ("workflows", "/dashboard/workflows/", PLAIN_BOUND_MS),
    ]


TOO_SLOW = (b"was stopped", b"took too long and was stopped")


def run(system, cfg, owner_id, log):
    """{"rows", "pages": [{name, path, p50, p99, bound, met, too_slow}], "errors": [...]} and the fill time."""
    rows = cfg.dashboard_rows or max(1000, int(1_000_000 * cfg.scale))
    requests = max(10, int(REQUESTS * min(1.0, max(cfg.scale, 0.2))))
    system.reset()
    clear()
    found = {"rows": rows, "requests": requests, "warmup": WARMUP, "pages": [], "errors": []}
    browser = Browser(system.port)
    try:
        log(f"dashboard: writing {rows:,} task rows")
        started = time.monotonic()
        fill(rows, owner_id)
        found["fill_seconds"] = round(time.monotonic() - started, 1)
        log(f"dashboard: {rows:,} rows written and analysed in {found['fill_seconds']:.0f} s")
        browser.login(*staff_user())
        for name, path, bound in pages(browser):
            try:
                p50, p99, body = timed(browser, path, requests)
            except Exception as exc:
                found["errors"].append(f"{name}: {type(exc).__name__}: {str(exc)[:200]}")
                found["pages"].append({"name": name, "path": path, "bound_ms": bound, "error": str(exc)[:200]})
                browser.close()
                continue
            too_slow = any(text in body for text in TOO_SLOW)
            page = {
                "name": name,
                "path": path,
                "p50_ms": round(p50, 2),
                "p99_ms": round(p99, 2),
                "bound_ms": bound,
                "met": p99 <= bound,
                "too_slow": too_slow,
            }
            found["pages"].append(page)
            log(f"dashboard: {name}: p50 {p50:,.1f} ms, p99 {p99:,.1f} ms{'  (stopped: too slow)' if too_slow else ''}")
    finally:
        browser.close()
        system.reset()
        clear()
    return found


def slug(name):
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def figures(found):
    """The run's figures for the results JSON: p50 and p99 per page, and the slowest plain page's p99."""
    out = {}
    for page in found["pages"]:
        if "p99_ms" in page:
            out[f"dashboard.{slug(page['name'])}.p50"] = page["p50_ms"]
            out[f"dashboard.{slug(page['name'])}.p99"] = page["p99_ms"]
    plain = [page["p99_ms"] for page in found["pages"] if "p99_ms" in page and page["bound_ms"] == PLAIN_BOUND_MS]
    if plain:
        out["dashboard.plain_p99_max"] = max(plain)
    return out
