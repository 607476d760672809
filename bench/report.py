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


def _ratio(num, den):
    if not num or not den or not den["median"]:
        return None
    return num["median"] / den["median"]


# (key, label, unit) in print order; keys index the `figures` dict.
ROWS = [
    ("machine.publish", "pika publish, confirms in batches", "msg/s"),
    ("machine.consume", "pika consume, prefetch + manual acks", "msg/s"),
    ("dramatiq.drain", "bare Dramatiq drain, 2 proc x {threads} thr", "msg/s"),
    ("celery.drain", "Celery drain, 2 proc (prefork)", "msg/s"),
    ("conveyor.drain1", "Conveyor drain, 1 worker proc x {threads} thr", "tasks/s"),
    ("conveyor.drain2", "Conveyor drain, 2 worker proc x {threads} thr", "tasks/s"),
    ("cpu.machine", "  CPU per message, pika consumer", "ms"),
    ("cpu.dramatiq", "  CPU per message, bare Dramatiq (all processes)", "ms"),
    ("cpu.celery", "  CPU per message, Celery (all processes)", "ms"),
    ("cpu.conveyor1", "  CPU per task, Conveyor 1 worker proc", "ms"),
    ("cpu.conveyor2", "  CPU per task, Conveyor 2 worker proc", "ms"),
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
    ("memory.web", "web process RSS (gunicorn worker)", "MB"),
    ("memory.worker", "worker process RSS (dramatiq worker)", "MB"),
]


def rows(cfg):
    """ROWS plus one row per worker-process count of the scale runs, before the memory rows."""
    scale = [
        (f"scale.{p}", f"sleep({cfg['sleep_seconds']}) x {p} worker proc (ideal {p * cfg['worker_threads'] / cfg['sleep_seconds']:.0f}/s)", "tasks/s")
        for p in cfg["scale_processes"]
    ]
    return ROWS[:-2] + scale + ROWS[-2:]


def ratios(figures, cfg):
    """(label, value, target text, met?) for every ratio the issue sets a target for."""
    f = figures.get
    out = []

    def add(label, value, target=None, ok=None):
        out.append({"label": label, "value": value, "target": target, "met": ok})

    drain2, drain1 = f("conveyor.drain2"), f("conveyor.drain1")
    celery, dramatiq_, consume = f("celery.drain"), f("dramatiq.drain"), f("machine.consume")
    r = _ratio(drain2, celery)
    add("Conveyor drain (2 proc) / Celery", r, ">= 1.5", None if r is None else r >= 1.5)
    r = _ratio(drain2, dramatiq_)
    add("Conveyor drain (2 proc) / bare Dramatiq", r, ">= 0.6", None if r is None else r >= 0.6)
    add("Conveyor drain (1 proc) / Celery", _ratio(drain1, celery))
    add("Conveyor drain (2 proc) / pika consume", _ratio(drain2, consume))
    add("bare Dramatiq / pika consume", _ratio(dramatiq_, consume))
    add("Celery / pika consume", _ratio(celery, consume))
    add("CPU per task: Conveyor (2 proc) / bare Dramatiq", _ratio(f("cpu.conveyor2"), f("cpu.dramatiq")))
    add("CPU per task: Conveyor (2 proc) / Celery", _ratio(f("cpu.conveyor2"), f("cpu.celery")))
    r = _ratio(f("submit.http_single"), f("submit.http_baseline"))
    add("HTTP 1 task/request / bare one-insert view", r, ">= 0.8", None if r is None else r >= 0.8)
    batch = f("submit.http_batch")
    add("HTTP batches (tasks/s)", batch and batch["median"], ">= 5000", None if not batch else batch["median"] >= 5000)
    p99 = f("latency.start_p99")
    add("enqueue -> start p99 (ms)", p99 and p99["median"], "<= 25", None if not p99 else p99["median"] <= 25)
    for procs in cfg.scale_processes:
        eff = f(f"scale.efficiency.{procs}")
        target = ">= 0.9" if procs == max(cfg.scale_processes) else None
        add(f"I/O scaling efficiency, {procs} proc", eff and eff["median"], target,
            None if not eff or target is None else eff["median"] >= 0.9)
    for key, label, limit in (("memory.worker", "worker RSS (MB)", 120), ("memory.web", "web RSS (MB)", 150)):
        mem = f(key)
        add(label, mem and mem["median"], f"<= {limit}", None if not mem else mem["median"] <= limit)
    return out


def table(result):
    cfg = result["config"]
    fmt = {
        "threads": cfg["worker_threads"], "conns": cfg["wrk_connections"], "batch": cfg["batch_size"],
        "rate": f"{cfg['latency_rate']:.0f}",
    }
    lines = []
    m = result["machine"]
    lines.append(
        f"Conveyor benchmark {result['started_at']}  |  {m['cores']} cores ({m['cpu']}), {m['memory_gb']:.1f} GB, "
        f"load avg {m['load_before']} before / {m['load_after']} after"
    )
    lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in result["versions"].items()))
    lines.append(
        f"Settings: scale {cfg['scale']}, {cfg['repeats']} repetitions, counts {result['counts']}"
    )
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
        lines.append(f"{text:<52} {_num(fig['median'], unit):>10} {_num(fig['min'], unit):>10} {_num(fig['max'], unit):>10}  {unit}")
    lines.append("")
    head = f"{'ratio / target (from medians)':<52} {'value':>10} {'target':>10}  met"
    lines += [head, "-" * len(head)]
    for r in result["ratios"]:
        value = "-" if r["value"] is None else f"{r['value']:,.2f}"
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        lines.append(f"{r['label']:<52} {value:>10} {r['target'] or '':>10}  {met}")
    return "\n".join(lines)


def write_json(result, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
