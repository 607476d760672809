#!/usr/bin/env python3
"""Writes dashboards/*.json, the dashboards Grafana provisions. Edit here, then run:

    python3 deploy/grafana/build_dashboards.py

Panels use only metric names from docs/observability.md ("Metrics"); tests/observability checks
that every panel query returns data from a running system.
Queue and outbox figures are reported equally by every web replica: `max`, never `sum`.
"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"


def target(expr, legend="", ref="A"):
    return {"refId": ref, "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}


def quantiles(metric, selector="", by=""):
    group = f"le{', ' + by if by else ''}"
    return [
        target(
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket{selector}[{RATE}])))",
            f"p{int(q * 100)}{' {{' + by + '}}' if by else ''}",
            ref,
        )
        for q, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
    ]


class Layout:
    def __init__(self):
        self.panels, self.y, self.x, self.next_id = [], 0, 0, 1

    def row(self, title):
        if self.x:
            self.y, self.x = self.y + 8, 0
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "id": self._id(),
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y},
                "panels": [],
            }
        )
        self.y += 1

    def panel(self, title, targets, unit="short", kind="timeseries", width=8, description="", stack=False):
        if self.x + width > 24:
            self.y, self.x = self.y + 8, 0
        for index, t in enumerate(targets):
            t["refId"] = chr(ord("A") + index)
        custom = {"fillOpacity": 10, "showPoints": "never"}
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
        panel = {
            "type": kind,
            "title": title,
            "id": self._id(),
            "datasource": DATASOURCE,
            "description": description,
            "gridPos": {"h": 8, "w": width, "x": self.x, "y": self.y},
            "targets": targets,
            "fieldConfig": {
                "defaults": {"unit": unit, **({"custom": custom} if kind == "timeseries" else {})},
                "overrides": [],
            },
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
            if kind == "timeseries"
            else {
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto",
            },
        }
        self.panels.append(panel)
        self.x += width

    def _id(self):
        self.next_id += 1
        return self.next_id - 1


def dashboard(uid, title, description, panels, variables=()):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["conveyor"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["conveyor"], "title": "Conveyor", "asDropdown": True}],
        "panels": panels,
    }


def overview():
    p = Layout()
    p.row("Tasks")
    p.panel(
        "Tasks finished by status, and retries",
        [
            target(f"sum by (status) (rate(conveyor_tasks_finished_total[{RATE}]))", "{{status}}"),
            target(f"sum(rate(conveyor_task_retries_total[{RATE}]))", "retried attempts"),
        ],
        unit="ops",
        description="Final outcomes per second; a retried attempt is not a failure yet.",
    )
    p.panel(
        "Failure ratio",
        [
            target(
                f'sum(rate(conveyor_tasks_finished_total{{status="FAILED"}}[{RATE}])) '
                f"/ sum(rate(conveyor_tasks_finished_total[{RATE}]))",
                "failed / finished",
            ),
        ],
        unit="percentunit",
        description="Share of finished tasks that ended FAILED (alert: ConveyorTaskFailureRatioHigh).",
    )
    p.panel(
        "Tasks accepted by source",
        [
            target(f"sum by (source) (rate(conveyor_tasks_accepted_total[{RATE}]))", "{{source}}"),
        ],
        unit="ops",
        description="Written durably: API, django.tasks or scheduler.",
    )
    p.panel(
        "Task duration (all tasks)",
        quantiles("conveyor_task_duration_seconds"),
        unit="s",
        description="Run time of each attempt.",
    )
    p.panel(
        "Queue wait: enqueue to start (all tasks)",
        quantiles("conveyor_task_queue_wait_seconds"),
        unit="s",
        description="How long work waits for a worker; grows when workers are short.",
    )
    p.panel(
        "Dead-lettered messages by reason",
        [
            target(f"sum by (reason) (increase(conveyor_dead_letters_total[{RATE}]))", "{{reason}}"),
        ],
        description="Alert: ConveyorMessagesDeadLettered.",
    )
    p.row("Queues (RabbitMQ)")
    p.panel(
        "Queue depth by state",
        [
            target("max by (queue, state) (conveyor_queue_messages)", "{{queue}} {{state}}"),
        ],
        description="ready: waiting; unacked: delivered to a worker (needs RABBITMQ_MANAGEMENT_URL); "
        "delayed: retry backoffs (<queue>.DQ); dead_letter: <queue>.XQ.",
    )
    p.panel(
        "Oldest waiting message",
        [
            target("max by (queue) (conveyor_queue_oldest_message_age_seconds)", "{{queue}}"),
        ],
        unit="s",
        description="Age of the next message to be delivered (alert: ConveyorQueueOldestMessageTooOld).",
    )
    p.panel(
        "Consumers per queue",
        [
            target("max by (queue) (conveyor_queue_consumers)", "{{queue}}"),
        ],
        description="Worker processes subscribed (alert: ConveyorQueueWithoutConsumers).",
    )
    p.panel(
        "Paused queues",
        [
            target("max by (queue) (conveyor_queue_paused)", "{{queue}}"),
        ],
        description="1 while an operator has paused the queue in Conveyor's dashboard: no worker starts "
        "its tasks, and the waiting alerts are silent for it (alert: ConveyorQueuePaused after an hour).",
    )
    p.row("Workers")
    p.panel(
        "Workers online",
        [
            target('count(up{job="worker"} == 1)', "containers"),
            target("sum(conveyor_worker_processes)", "processes"),
        ],
        kind="stat",
        width=6,
    )
    p.panel(
        "Busy worker threads",
        [
            target("sum(conveyor_tasks_in_progress)", "busy"),
            target("sum(conveyor_worker_threads)", "threads"),
        ],
        width=9,
        description="Running attempts against task slots; busy = threads means workers are saturated.",
    )
    p.panel(
        "Worker utilisation",
        [
            target("sum(conveyor_tasks_in_progress) / sum(conveyor_worker_threads)", "busy / threads"),
            target("max(conveyor_outbox_entries)", "tasks waiting in the outbox (deferred, retries)"),
        ],
        width=9,
        unit="short",
    )
    p.row("Scheduler")
    p.panel(
        "Scheduler fires by schedule",
        [
            target(f"sum by (schedule) (rate(conveyor_scheduler_fires_total[{RATE}]))", "{{schedule}}"),
        ],
        unit="ops",
    )
    p.panel(
        "Fire lag (p95 by schedule)",
        [
            target(
                "histogram_quantile(0.95, sum by (le, schedule)"
                f" (rate(conveyor_scheduler_fire_lag_seconds_bucket[{RATE}])))",
                "{{schedule}}",
            ),
        ],
        unit="s",
        description="Delay between a fire time and the task being enqueued.",
    )
    p.panel(
        "Leader and misfires",
        [
            target("sum(conveyor_scheduler_is_leader)", "replicas leading (want 1)"),
            target(f"sum by (schedule) (increase(conveyor_scheduler_misfires_total[{RATE}]))", "misfires {{schedule}}"),
        ],
        description="Alerts: ConveyorNoSchedulerLeader, ConveyorSchedulerMisfires.",
    )
    p.row("Outbox")
    p.panel(
        "Outbox backlog",
        [
            target("max(conveyor_outbox_entries)", "entries (deferred included)"),
        ],
        width=12,
    )
    p.panel(
        "Oldest due outbox entry",
        [
            target("max(conveyor_outbox_oldest_entry_age_seconds)", "age"),
        ],
        unit="s",
        width=12,
        description="Alert: ConveyorOutboxNotDraining.",
    )
    p.row("Web")
    p.panel(
        "Requests by status",
        [
            target(f"sum by (status) (rate(conveyor_http_requests_total[{RATE}]))", "{{status}}"),
        ],
        unit="reqps",
        stack=True,
    )
    p.panel("Request latency", quantiles("conveyor_http_request_duration_seconds"), unit="s")
    p.panel(
        "Errors by view (4xx and 5xx)",
        [
            target(
                f'sum by (view, status) (rate(conveyor_http_requests_total{{status=~"[45].."}}[{RATE}]))',
                "{{status}} {{view}}",
            ),
            target(
                f'(sum(rate(conveyor_http_requests_total{{status=~"5.."}}[{RATE}])) or vector(0)) '
                f"/ sum(rate(conveyor_http_requests_total[{RATE}]))",
                "5xx ratio",
            ),
        ],
        unit="short",
        description="Alert on the 5xx ratio: ConveyorWebErrorRatioHigh.",
    )
    p.row("Targets")
    p.panel(
        "Targets up by job",
        [
            target("sum by (job) (up)", "{{job}} up"),
            target("count by (job) (up)", "{{job}} scraped"),
        ],
        width=24,
        description="Alerts: ConveyorTargetDown, ConveyorNoWorkerRunning.",
    )
    return dashboard(
        "conveyor-overview",
        "Conveyor overview",
        "Throughput, failures, queues, workers, scheduler, outbox and web at a glance.",
        p.panels,
    )


def per_task():
    sel = '{task="$task"}'
    p = Layout()
    p.row("$task")
    p.panel(
        "Finished by status, and retries",
        [
            target(f"sum by (status) (rate(conveyor_tasks_finished_total{sel}[{RATE}]))", "{{status}}"),
            target(f"sum(rate(conveyor_task_retries_total{sel}[{RATE}]))", "retried attempts"),
        ],
        unit="ops",
    )
    p.panel(
        "Failure ratio",
        [
            target(
                f'sum(rate(conveyor_tasks_finished_total{{task="$task",status="FAILED"}}[{RATE}])) '
                f"/ sum(rate(conveyor_tasks_finished_total{sel}[{RATE}]))",
                "failed / finished",
            ),
        ],
        unit="percentunit",
    )
    p.panel(
        "Accepted by source",
        [
            target(f"sum by (source) (rate(conveyor_tasks_accepted_total{sel}[{RATE}]))", "{{source}}"),
        ],
        unit="ops",
    )
    p.panel("Duration", quantiles("conveyor_task_duration_seconds", sel), unit="s")
    p.panel("Queue wait (enqueue to start)", quantiles("conveyor_task_queue_wait_seconds", sel), unit="s")
    p.panel(
        "In progress",
        [
            target(f"sum(conveyor_tasks_in_progress{sel})", "running"),
        ],
    )
    p.panel(
        "Attempts and failed attempts",
        [
            target(f"sum(rate(conveyor_task_duration_seconds_count{sel}[{RATE}]))", "attempts"),
            target(
                f"(sum(rate(conveyor_task_retries_total{sel}[{RATE}])) or vector(0))"
                f' + (sum(rate(conveyor_tasks_finished_total{{task="$task",status="FAILED"}}[{RATE}])) or vector(0))',
                "failed attempts",
            ),
        ],
        unit="ops",
        width=12,
        description="Every attempt, and those that raised (retried or failed for good).",
    )
    p.panel(
        "Its queue: depth and oldest message",
        [
            target(
                f"max by (queue, state) (conveyor_queue_messages and on (queue) "
                f"group by (queue) (conveyor_tasks_finished_total{sel}))",
                "{{queue}} {{state}}",
            ),
            target(
                f"max by (queue) (conveyor_queue_oldest_message_age_seconds and on (queue) "
                f"group by (queue) (conveyor_tasks_finished_total{sel}))",
                "{{queue}} oldest (s)",
            ),
        ],
        width=12,
        description="The queue this task runs on (from its finished-task series).",
    )
    variable = {
        "name": "task",
        "label": "Task",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(conveyor_tasks_finished_total, task)", "refId": "task"},
        "definition": "label_values(conveyor_tasks_finished_total, task)",
        "refresh": 2,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
    }
    return dashboard(
        "conveyor-task",
        "Conveyor task",
        "One task: runs, failures, duration, queue wait, its queue.",
        p.panels,
        [variable],
    )


if __name__ == "__main__":
    for name, board in (("overview", overview()), ("task", per_task())):
        (HERE / "dashboards" / f"conveyor-{name}.json").write_text(json.dumps(board, indent=2) + "\n")
