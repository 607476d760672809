"""Django admin for workflows: read them with their steps, cancel and retry (the API's guarded changes)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from conveyor.errors import ConveyorError
from conveyor.workflows import progress
from conveyor.workflows.models import Workflow, WorkflowStep


class StepInline(admin.TabularInline):
    model = WorkflowStep
    fields = ("position", "path", "task_path", "state", "waiting", "task")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "step_count", "remaining", "source", "schedule_name", "created_at", "finished_at")
    list_filter = ("status", "source", "on_failure")
    search_fields = ("=id", "schedule_name")
    show_full_result_count = False
    ordering = ("-created_at",)
    readonly_fields = [f.name for f in Workflow._meta.fields]
    inlines = [StepInline]
    actions = ["cancel", "retry"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workflows come from Django code, the API or the scheduler

    def _each(self, request: HttpRequest, queryset: QuerySet, change: object, verb: str) -> None:
        done, refused = 0, {}
        for workflow_id in queryset.values_list("id", flat=True):
            try:
                change(workflow_id)
                done += 1
            except ConveyorError as exc:
                refused[exc.message] = refused.get(exc.message, 0) + 1
        self.message_user(request, f"{verb} {done} workflow(s).", messages.SUCCESS)
        for reason, times in refused.items():
            self.message_user(request, f"Not {verb.lower()}: {times} workflow(s): {reason}", messages.WARNING)

    @admin.action(description="Cancel selected running workflows")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, progress.cancel, "Cancelled")

    @admin.action(description="Retry selected FAILED or CANCELLED workflows")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._each(request, queryset, progress.retry, "Retried")
