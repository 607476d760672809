from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from conveyor import states, tokens
from conveyor.core.models import ApiToken, TaskRecord
from conveyor.errors import ConveyorError


@admin.register(TaskRecord)
class TaskRecordAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_path",
        "status",
        "queue_name",
        "attempts",
        "enqueued_at",
        "finished_at",
        "source",
        "schedule_name",
    )
    list_filter = ("status", "queue_name", "source")
    search_fields = ("=id", "task_path")
    # Built for millions of rows: no COUNT(*) over the whole table, no date drill-down.
    show_full_result_count = False
    list_select_related = ("owner",)
    ordering = ("-enqueued_at",)
    readonly_fields = [f.name for f in TaskRecord._meta.fields]
    actions = ["retry", "cancel"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tasks come in through the API, django.tasks or the scheduler

    @admin.action(description="Retry selected FAILED or CANCELLED tasks")
    def retry(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The same guarded change as the API's retry: the status and the catalog are checked there.
        count, refused = 0, {}
        for task_id in queryset.values_list("id", flat=True):
            try:
                states.retry(task_id)
                count += 1
            except ConveyorError as exc:
                refused[exc.message] = refused.get(exc.message, 0) + 1
        self.message_user(request, f"Re-queued {count} task(s).", messages.SUCCESS)
        for reason, times in refused.items():
            self.message_user(request, f"Not re-queued: {times} task(s): {reason}", messages.WARNING)

    @admin.action(description="Cancel selected READY tasks")
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = states.cancel_many(
            queryset.values_list("id", flat=True), reason=f"cancelled by {request.user} in admin"
        )
        self.message_user(request, f"Cancelled {count} task(s).", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "scopes", "created_at", "revoked_at")
    readonly_fields = ("prefix", "key_hash", "created_at", "last_used_at")
    fields = ("name", "scopes", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at")
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # `manage.py create_token` shows the secret once; the admin never could

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        tokens.forget_cached()  # this process stops accepting them at once; others within seconds
        self.message_user(
            request,
            f"Revoked {count} token(s); every web process refuses them within {tokens.CACHE_SECONDS:.0f} s.",
            messages.SUCCESS,
        )


import conveyor.scheduling.admin  # noqa: E402,F401  (Schedule and Fire admin)
import conveyor.workflows.admin  # noqa: E402,F401  (Workflow admin)

# django-dramatiq's own task table duplicates ours and was not built for large tables.
try:
    from django_dramatiq.models import Task as DramatiqTask

    admin.site.unregister(DramatiqTask)
except (ImportError, admin.sites.NotRegistered):
    pass
