"""Django admin for schedules: edit at runtime; the running scheduler picks changes up within
SCHEDULER_POLL_SECONDS (it reads schedules from the database on every pass)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from conveyor.errors import ConveyorError
from conveyor.scheduling import firing
from conveyor.scheduling.models import Fire, Schedule


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ("name", "task_path", "expression", "enabled", "next_fire_time", "last_fire_time", "origin")
    list_filter = ("enabled", "origin")
    search_fields = ("name", "task_path")
    readonly_fields = ("origin", "next_fire_time", "last_fire_time", "code_definition", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "task_path", "args", "kwargs", "queue_name", "priority", "workflow", "enabled")}),
        (
            "When",
            {
                "fields": ("cron", "timezone", "interval_seconds", "start_at"),
                "description": "Either a cron expression (read in the time zone) or an interval.",
            },
        ),
        ("Missed fires", {"fields": ("coalesce", "misfire_grace_seconds")}),
        (
            "State",
            {"fields": ("origin", "next_fire_time", "last_fire_time", "code_definition", "created_at", "updated_at")},
        ),
    )
    actions = ["enable", "disable", "run_now"]

    @admin.display(description="When")
    def expression(self, obj: Schedule) -> str:
        return obj.expression

    @admin.action(description="Enable selected schedules")
    def enable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable selected schedules")
    def disable(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request: HttpRequest, queryset: QuerySet, enabled: bool) -> None:
        count = 0
        for schedule in queryset.filter(enabled=not enabled):
            schedule.enabled = enabled
            schedule.save()  # through save(): re-computes the next fire time
            count += 1
        self.message_user(request, f"{'Enabled' if enabled else 'Disabled'} {count} schedule(s).", messages.SUCCESS)

    @admin.action(description="Run selected schedules now")
    def run_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for schedule in queryset:
            try:
                result = firing.run_now(schedule)
                started = f"task {result.task_id}" if result.task_id else f"workflow {result.workflow_id}"
                self.message_user(request, f"{schedule.name}: {started} enqueued.", messages.SUCCESS)
            except ConveyorError as exc:
                self.message_user(request, f"{schedule.name}: {exc}", messages.ERROR)


@admin.register(Fire)
class FireAdmin(admin.ModelAdmin):
    list_display = ("schedule", "fire_time", "outcome", "manual", "missed_before", "task", "created_at")
    list_filter = ("outcome", "manual")
    search_fields = ("schedule__name",)
    list_select_related = ("schedule",)
    show_full_result_count = False  # a fast schedule writes many rows
    readonly_fields = [f.name for f in Fire._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only the scheduler (or "run now") fires
