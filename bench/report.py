"""Summaries (median, min, max of the repetitions), the printed table and the JSON file."""

import json
import statistics


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _num(value, unit):
    if value is None:
        return "-"
    if unit in ("ms", "MB") or value < 100:
        return f"{value:,.2f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,.0f}"


# (key, label, unit) in print order; keys index the `figures` dict.
ROWS = [
    ("machine.publish", "pika publish, confirms in batches", "msg/s"),
    ("machine.consume", "pika consume, prefetch + manual acks", "msg/s"),
    ("dramatiq.drain", "bare Dramatiq drain, 2 proc x {threads} thr", "msg/s"),
    ("celery.drain", "Celery drain, 2 proc (prefork)", "msg/s"),
    ("celery_results.drain", "Celery + django-celery-results drain, 2 proc", "tasks/s"),
    ("django_q.drain", "django-q2 drain, ORM broker, 2 workers", "tasks/s"),
    ("conveyor.drain1", "Conveyor drain, 1 worker proc x {threads} thr", "tasks/s"),
    ("conveyor.drain2", "Conveyor drain, 2 worker proc x {threads} thr", "tasks/s"),
    ("cpu.machine", "  CPU per message, pika consumer", "ms"),
    ("cpu.dramatiq", "  CPU per message, bare Dramatiq (all processes)", "ms"),
    ("cpu.celery", "  CPU per message, Celery (all processes)", "ms"),
    ("cpu.celery_results", "  CPU per task, Celery + results (all processes)", "ms"),
    ("cpu.django_q", "  CPU per task, django-q2 (all processes)", "ms"),
    ("cpu.conveyor1", "  CPU per task, Conveyor 1 worker proc", "ms"),
    ("cpu.conveyor2", "  CPU per task, Conveyor 2 worker proc", "ms"),
    ("growth.drain.empty", "Conveyor drain, 2 proc, empty task table", "tasks/s"),
    ("growth.drain.full", "Conveyor drain, 2 proc, {growth_rows} finished rows", "tasks/s"),
    ("growth.list_p99.empty", "GET /api/v1/tasks p99, empty task table", "ms"),
    ("growth.list_p99.full", "GET /api/v1/tasks p99, {growth_rows} finished rows", "ms"),
    ("growth.failed_p99.full", "GET /api/v1/tasks?status=FAILED p99, {growth_rows} rows", "ms"),
    ("submit.http_single", "HTTP submit, 1 task/request (wrk -c{conns})", "tasks/s"),
    ("submit.http_baseline", "bare Django view, 1 insert/request (wrk -c{conns})", "req/s"),
    ("submit.http_batch", "HTTP submit, batches of {batch}", "tasks/s"),
    ("submit.enqueue", "django.tasks .enqueue() from Django code", "tasks/s"),
    ("latency.achieved_rate", ".enqueue() rate reached (asked {rate}/s)", "tasks/s"),
    ("latency.start_p50", "enqueue -> start p50 @ {rate}/s", "ms"),
    ("latency.start_p99", "enqueue -> start p99 @ {rate}/s", "ms"),
    ("latency.start_max", "enqueue -> start max @ {rate}/s", "ms"),
    ("latency.finish_p50", "enqueue -> finished p50 @ {rate}/s", "ms"),
    ("latency.finish_p99", "enqueue -> finished p99 @ {rate}/s", "ms"),
    ("latency.finish_max", "enqueue -> finished max @ {rate}/s", "ms"),
    ("workflow.chord_ms", "chord of {chord_members} add members + total, submit -> callback done", "ms"),
    ("workflow.chain10_ms", "10-step chain, submit -> last step done (light load)", "ms"),
    ("workflow.singles10_ms", "10 single tasks one after another, each awaited", "ms"),
    ("memory.web", "web process RSS (gunicorn worker)", "MB"),
    ("memory.worker", "worker process RSS (dramatiq worker)", "MB"),
]


def rows(cfg):
    """ROWS plus one row per worker-process count of the scale runs, before the memory rows."""
    scale = [
        (
            f"scale.{p}",
            f"sleep({cfg['sleep_seconds']}) x {p} worker proc"
            f" (ideal {p * cfg['worker_threads'] / cfg['sleep_seconds']:.0f}/s)",
            "tasks/s",
        )
        for p in cfg["scale_processes"]
    ]
    return ROWS[:-2] + scale + ROWS[-2:]


def _missing(key, skipped):
    return skipped.get(key) or skipped.get(key.split(".")[0]) or "not measured"


def ratios(figures, cfg, skipped=None):
    """(label, value, target text, met?) for every ratio the issue sets a target for.

    A ratio without a value says why (`why`): a figure was skipped or not measured, or
    its denominator was 0, as CPU time can be in a tiny run (it is counted in 10 ms ticks).
    """
    skipped = skipped or {}
    out = []

    def add(label, value, why=None, target=None, limit=None):
        met = None if value is None or limit is None else limit(value)
        out.append(
            {"label": label, "value": value, "why": why if value is None else None, "target": target, "met": met}
        )

    def ratio(label, num, den, target=None, limit=None):
        for key in (num, den):
            if figures.get(key) is None:
                return add(label, None, _missing(key, skipped), target, limit)
        if not figures[den]["median"]:
            return add(label, None, f"{den} measured 0: too short a run to count", target, limit)
        add(label, figures[num]["median"] / figures[den]["median"], None, target, limit)

    def single(label, key, target, limit):
        figure = figures.get(key)
        add(label, figure and figure["median"], None if figure else _missing(key, skipped), target, limit)

    ratio("Conveyor drain (2 proc) / Celery", "conveyor.drain2", "celery.drain", ">= 1.5", lambda r: r >= 1.5)
    ratio("Conveyor drain (2 proc) / bare Dramatiq", "conveyor.drain2", "dramatiq.drain", ">= 0.6", lambda r: r >= 0.6)
    ratio(
        "Conveyor drain (2 proc) / Celery + results",
        "conveyor.drain2",
        "celery_results.drain",
        ">= 5",
        lambda r: r >= 5,
    )
    ratio("Conveyor drain (2 proc) / django-q2", "conveyor.drain2", "django_q.drain")
    ratio("Conveyor drain (1 proc) / Celery", "conveyor.drain1", "celery.drain")
    ratio("Conveyor drain (2 proc) / pika consume", "conveyor.drain2", "machine.consume")
    ratio("bare Dramatiq / pika consume", "dramatiq.drain", "machine.consume")
    ratio("Celery / pika consume", "celery.drain", "machine.consume")
    ratio("CPU per task: Conveyor (2 proc) / bare Dramatiq", "cpu.conveyor2", "cpu.dramatiq")
    ratio("CPU per task: Conveyor (2 proc) / Celery", "cpu.conveyor2", "cpu.celery")
    ratio("CPU per task: Conveyor (2 proc) / Celery + results", "cpu.conveyor2", "cpu.celery_results")
    ratio("CPU per task: Conveyor (2 proc) / django-q2", "cpu.conveyor2", "cpu.django_q")
    ratio(
        "HTTP 1 task/request / bare one-insert view",
        "submit.http_single",
        "submit.http_baseline",
        ">= 0.8",
        lambda r: r >= 0.8,
    )
    single("HTTP batches (tasks/s)", "submit.http_batch", ">= 5000", lambda v: v >= 5000)
    single("CPU per task, Conveyor 2 worker proc (ms)", "cpu.conveyor2", "<= 0.4", lambda v: v <= 0.4)
    single("enqueue -> start p99 (ms)", "latency.start_p99", "<= 10", lambda v: v <= 10)
    ratio(
        "drain with a million finished rows / on an empty table",
        "growth.drain.full",
        "growth.drain.empty",
        ">= 0.9",
        lambda r: r >= 0.9,
    )
    ratio("GET /api/v1/tasks p99: a million rows / empty table", "growth.list_p99.full", "growth.list_p99.empty")
    for procs in cfg.scale_processes:
        last = procs == max(cfg.scale_processes)
        single(
            f"I/O scaling efficiency, {procs} proc",
            f"scale.efficiency.{procs}",
            ">= 0.9" if last else None,
            (lambda v: v >= 0.9) if last else None,
        )
    ratio("10-step chain / 10 awaited single tasks (time)", "workflow.chain10_ms", "workflow.singles10_ms")
    single(
        "dashboard: slowest list page p99, a million rows (ms)",
        "dashboard.plain_p99_max",
        "<= 500",
        lambda v: v <= 500,
    )
    single("worker RSS (MB)", "memory.worker", "<= 120", lambda v: v <= 120)
    single("web RSS (MB)", "memory.web", "<= 150", lambda v: v <= 150)
    return out


def table(result):
    cfg = result["config"]
    fmt = {
        "threads": cfg["worker_threads"],
        "conns": cfg["wrk_connections"],
        "batch": cfg["batch_size"],
        "rate": f"{cfg['latency_rate']:.0f}",
        "growth_rows": f"{result.get('counts', {}).get('growth_rows', 0):,}",
        "chord_members": f"{result.get('counts', {}).get('chord_members', 0):,}",
    }
    lines = []
    m = result["machine"]
    lines.append(
        f"Conveyor benchmark {result['started_at']}  |  {m['cores']} cores ({m['cpu']}), {m['memory_gb']:.1f} GB, "
        f"load avg {m['load_before']} before / {m['load_after']} after"
    )
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))
    # The durable peers report what their own processes ran (their Django among it).
    for peer, found in result.get("peer_versions", {}).items():
        lines.append(f"  {peer} ran with: " + ", ".join(f"{k} {v}" for k, v in found.items()))
    lines.append(f"Settings: scale {cfg['scale']}, {cfg['repeats']} repetitions, counts {result['counts']}")
    lines.append("")
    head = f"{'figure':<52} {'median':>10} {'min':>10} {'max':>10}  unit"
    lines += [head, "-" * len(head)]
    for key, label, unit in rows(cfg):
        fig = result["figures"].get(key)
        text = label.format(**fmt)
        if fig is None:
            note = result["skipped"].get(key.split(".")[0]) or result["skipped"].get(key, "not measured")
            lines.append(f"{text:<52} {'-':>10} {'':>10} {'':>10}  ({note})")
            continue
        lines.append(
            f"{text:<52} {_num(fig['median'], unit):>10} {_num(fig['min'], unit):>10}"
            f" {_num(fig['max'], unit):>10}  {unit}"
        )
    lines.append("")
    head = f"{'ratio / target (from medians)':<52} {'value':>10} {'target':>10}  met"
    lines += [head, "-" * len(head)]
    for r in result["ratios"]:
        value = "-" if r["value"] is None else f"{r['value']:,.2f}"
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        why = f"  ({r['why']})" if r.get("why") else ""
        lines.append(f"{r['label']:<52} {value:>10} {r['target'] or '':>10}  {met}{why}".rstrip())
    if result.get("dashboard"):
        lines += ["", *dashboard_table(result["dashboard"])]
    return "\n".join(lines)


def dashboard_table(found):
    """The dashboard phase's pages: p50 and p99 of sequential GETs, against each page's bound."""
    lines = [
        f"Dashboard with {found['rows']:,} task rows: {found['requests']} sequential GETs per page after"
        f" {found['warmup']} warm-ups, logged in as staff (p99 of {found['requests']} = the slowest)"
    ]
    head = f"{'page':<40} {'p50 ms':>9} {'p99 ms':>9} {'bound':>8}  met"
    lines += [head, "-" * len(head)]
    for page in found["pages"]:
        bound = f"<= {page['bound_ms']}"
        if "error" in page:
            lines.append(f"{page['name']:<40} {'-':>9} {'-':>9} {bound:>8}  ERROR: {page['error'][:80]}")
            continue
        met = "yes" if page["met"] else "NO"
        note = "  (stopped by the statement timeout: answered 'too slow')" if page.get("too_slow") else ""
        p50, p99 = _num(page["p50_ms"], "ms"), _num(page["p99_ms"], "ms")
        lines.append(f"{page['name']:<40} {p50:>9} {p99:>9} {bound:>8}  {met}{note}")
    if found.get("web_rss_mb"):
        lines.append(f"web process RSS after the dashboard pages: {found['web_rss_mb']:.0f} MB")
    return lines


def write_json(result, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
