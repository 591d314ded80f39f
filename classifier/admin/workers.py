"""Admin for the queue's worker processes, with queue depths and recent failures."""

from django.contrib import admin

from classifier import monitoring
from classifier.models import WorkerProcess
from dataset.validation import human_size


@admin.register(WorkerProcess)
class WorkerProcessAdmin(admin.ModelAdmin):
    """Each queue worker process as it last reported itself, above it the queue depth per cluster
    and the latest failures. Rows are the workers' own; old ones may be deleted."""

    list_display = ("__str__", "cluster", "versions", "jobs_done", "memory", "last_seen", "started_at")
    list_filter = ("cluster", "node")
    change_list_template = "admin/classifier/workerprocess/change_list.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="RSS", ordering="rss_bytes")
    def memory(self, worker):
        return human_size(worker.rss_bytes)

    def changelist_view(self, request, extra_context=None):
        context = {"queue_depths": monitoring.queue_depths(), "failures": monitoring.recent_failures()}
        return super().changelist_view(request, {**(extra_context or {}), **context})
