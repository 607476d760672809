"""Schedules declared in code with @periodic, and their sync into the database."""

from datetime import timedelta

import pytest
from django.tasks import task

from conveyor.scheduling import declarations, periodic
from conveyor.scheduling.models import Schedule, ScheduleOrigin

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def declared(**overrides):
    fields = {"name": "nightly", "task_path": "demo.tasks.add", "cron": "0 2 * * *", "args": [1, 2]}
    fields.update(overrides)
    return {fields["name"]: declarations.Declaration(**fields)}


def test_the_shipped_demo_schedules_are_declared_and_valid():
    # Given the declarations found in every app's tasks.py
    found = declarations.declarations()
    # Then the seeds' 8:00 digest and the maintenance purge are there
    assert found["demo.daily-digest"].cron == "0 8 * * *"
    assert found["demo.daily-digest"].misfire_grace_seconds == 3600
    assert found["conveyor.purge-finished-tasks"].task_path == "conveyor.core.tasks.purge_finished_tasks"
    # and they sync into the database as code schedules with a next fire time
    report = declarations.sync()
    assert set(report["created"]) >= {"demo.daily-digest", "conveyor.purge-finished-tasks"}
    assert not report["skipped"]
    digest = Schedule.objects.get(name="demo.daily-digest")
    assert digest.origin == ScheduleOrigin.CODE and digest.next_fire_time is not None


def test_a_runtime_edit_survives_a_sync_while_the_code_is_unchanged():
    declarations.sync(declared())
    Schedule.objects.filter(name="nightly").update(enabled=False)
    assert declarations.sync(declared()) == {"created": [], "updated": [], "retired": [], "skipped": []}
    assert not Schedule.objects.get(name="nightly").enabled


def test_a_changed_declaration_wins_over_the_database():
    declarations.sync(declared())
    Schedule.objects.filter(name="nightly").update(enabled=False)
    report = declarations.sync(declared(cron="0 3 * * *"))
    schedule = Schedule.objects.get(name="nightly")
    assert report["updated"] == ["nightly"]
    assert (schedule.cron, schedule.enabled) == ("0 3 * * *", True)


def test_a_declaration_removed_from_code_is_disabled_not_deleted():
    declarations.sync(declared())
    report = declarations.sync({})
    assert report["retired"] == ["nightly"]
    assert not Schedule.objects.get(name="nightly").enabled


def test_a_runtime_schedule_with_the_same_name_is_left_alone():
    Schedule.objects.create(name="nightly", task_path="demo.tasks.noop", interval_seconds=5)
    assert declarations.sync(declared())["skipped"] == ["nightly"]
    assert Schedule.objects.get(name="nightly").task_path == "demo.tasks.noop"


def test_a_declaration_with_bad_arguments_is_skipped_not_synced():
    report = declarations.sync(declared(args=["four", "six", "seven"]))
    assert report["skipped"] == ["nightly"] and not Schedule.objects.exists()


def test_periodic_refuses_bad_declarations_at_import():
    with pytest.raises(TypeError):
        periodic()  # neither cron nor interval
    with pytest.raises(TypeError):
        periodic(cron="* * * * *", interval=5)
    with pytest.raises(ValueError):
        periodic(cron="99 * * * *")
    with pytest.raises(TypeError):
        periodic(interval=timedelta(minutes=5))(lambda: None)  # below @task, not above


@task
def tidy():
    pass


def test_periodic_registers_the_task_and_returns_it_unchanged():
    decorated = periodic(name="tests.tidy", interval=timedelta(minutes=5))(tidy)
    try:
        assert decorated is tidy
        assert declarations.declarations()["tests.tidy"].interval_seconds == 300
    finally:
        declarations._declarations.pop("tests.tidy", None)
