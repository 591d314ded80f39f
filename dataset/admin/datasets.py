"""The dataset page: labels, counts per label and split, and imports with their progress."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from dataset import imports, selectors, services
from dataset.models import Dataset, DatasetImage, ImportRun, Label

IMPORT_RUNS_SHOWN = 5
REJECTIONS_SHOWN = 100

# Actions other apps offer on the dataset list; they add themselves (dataset imports none of them).
DATASET_ACTIONS: list = []


def import_report_show(model_admin, request, report) -> None:
    """The summary, then each duplicate (linked to the image that has it) and each refusal."""
    level = messages.SUCCESS if report.imported else messages.WARNING
    model_admin.message_user(request, report.summary(), level)
    for name, existing in report.duplicates:
        model_admin.message_user(
            request,
            format_html(
                "“{}” is already in the dataset as <a href=\"{}\">“{}”</a> (image #{}); not added again.",
                name, reverse("admin:dataset_datasetimage_change", args=[existing.pk]), existing, existing.pk,
            ),
            messages.WARNING,
        )
    for _, reason in report.rejected:
        model_admin.message_user(request, reason, messages.ERROR)


def import_run_text(run: ImportRun) -> str:
    """Where an import on the queue stands, in a sentence (the dataset page and its poll show it)."""
    name = f"“{run.archive_name}”"
    counts = f"{run.imported} imported, {run.duplicates} duplicates skipped, {run.rejected} rejected"
    if run.status == ImportRun.Status.QUEUED:
        return f"{name}: queued, {run.total} files; it starts when the training worker is free."
    if run.status == ImportRun.Status.RUNNING:
        return f"{name}: importing, {run.done} of {run.total} files ({counts})."
    if run.status == ImportRun.Status.DONE:
        return f"{name}: done, {counts}."
    return f"{name}: failed after {run.done} of {run.total} files ({counts}). {run.error}"


class LabelInline(admin.TabularInline):
    model = Label
    extra = 1
    fields = ("name", "image_count")
    readonly_fields = ("image_count",)

    @admin.display(description="Images")
    def image_count(self, label):
        return label.images.count() if label.pk else "–"


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "image_count", "label_names")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    inlines = [LabelInline]
    readonly_fields = ("counts_table", "import_runs")
    fields = ("name", "slug", "description", "counts_table", "import_runs")
    actions = DATASET_ACTIONS

    class Media:
        js = ["dataset/import_progress.js"]

    def get_urls(self):
        own = [
            path("<int:pk>/imports/", self.admin_site.admin_view(self.import_runs_view),
                 name="dataset_dataset_imports"),
        ]
        return own + super().get_urls()

    @admin.display(description="Images")
    def image_count(self, dataset):
        return dataset.images.count()

    @admin.display(description="Labels")
    def label_names(self, dataset):
        return ", ".join(label.name for label in dataset.labels.all())

    @admin.display(description="Images per label and split")
    def counts_table(self, dataset):
        if not dataset.pk:
            return "–"
        columns = [*DatasetImage.Split.values, "excluded", "total"]
        changelist = reverse("admin:dataset_datasetimage_changelist")
        header = format_html_join("", "<th>{}</th>", ((column,) for column in ["label", *columns]))
        rows = format_html_join(
            "",
            "<tr><td>{}</td>{}</tr>",
            (
                (
                    name,
                    format_html_join(
                        "",
                        '<td><a href="{}?dataset__id__exact={}&amp;{}{}">{}</a></td>',
                        (
                            (changelist, dataset.pk, label_filter(name), split_filter(column), counts.get(column, 0))
                            for column in columns
                        ),
                    ),
                )
                for name, counts in selectors.dataset_counts(dataset=dataset).items()
            ),
        )
        import_url = reverse("admin:dataset_datasetimage_import") + f"?dataset={dataset.pk}"
        return format_html(
            '<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table><p><a class="button" href="{}">'
            "Import images…</a></p>",
            header,
            rows or format_html('<tr><td colspan="{}">No images yet.</td></tr>', len(columns) + 1),
            import_url,
        )

    @admin.display(description="Imports")
    def import_runs(self, dataset):
        runs = list(dataset.import_runs.all()[:IMPORT_RUNS_SHOWN]) if dataset.pk else []
        if not runs:
            return "None on the queue yet: a large zip or many photos import there, and show here."
        return format_html(
            '<div class="import-runs" data-url="{}">{}</div>',
            reverse("admin:dataset_dataset_imports", args=[dataset.pk]),
            format_html_join("", "{}", ((import_run_html(run),) for run in runs)),
        )

    def import_runs_view(self, request, pk):
        """The dataset's recent imports as JSON, for the page to show their progress as it goes."""
        dataset = get_object_or_404(Dataset, pk=pk)
        if not self.has_view_permission(request, dataset):
            raise PermissionDenied
        runs = dataset.import_runs.all()[:IMPORT_RUNS_SHOWN]
        return JsonResponse({"runs": [
            {"id": run.pk, "status": run.status, "active": run.status in ImportRun.ACTIVE, "done": run.done,
             "total": run.total, "text": import_run_text(run)}
            for run in runs
        ]})

    def get_deleted_objects(self, objs, request):
        """A dataset's delete permission is enough to delete all it holds (images, and what other
        apps keep of it, such as model versions that cannot be deleted one by one)."""
        deleted, counts, _, protected = super().get_deleted_objects(objs, request)
        return deleted, counts, set(), protected

    def delete_model(self, request, obj):
        services.dataset_images_delete(images=obj.images.all())
        imports.import_runs_delete(datasets=Dataset.objects.filter(pk=obj.pk))
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        services.dataset_images_delete(images=DatasetImage.objects.filter(dataset__in=queryset))
        imports.import_runs_delete(datasets=queryset)
        super().delete_queryset(request, queryset)


def import_run_html(run: ImportRun) -> str:
    """One run: a progress bar while it is active (import_progress.js moves it), its sentence, and
    the reasons files were rejected once it is done."""
    rejections = run.rejections[:REJECTIONS_SHOWN]
    more = len(run.rejections) - len(rejections)
    return format_html(
        '<div class="import-run" data-id="{}" data-active="{}">{}<span class="import-run-text">{}</span>{}</div>',
        run.pk,
        "1" if run.status in ImportRun.ACTIVE else "",
        format_html('<progress max="{}" value="{}"></progress> ', run.total, run.done)
        if run.status in ImportRun.ACTIVE else "",
        import_run_text(run),
        format_html(
            "<details><summary>Why {} files were rejected</summary><ul>{}</ul>{}</details>",
            len(run.rejections),
            format_html_join("", "<li>{}</li>", ((reason,) for reason in rejections)),
            f"… and {more} more." if more else "",
        ) if run.rejections else "",
    )


def label_filter(name: str) -> str:
    if name == selectors.UNLABELLED:
        return "label__name__isnull=True"
    return urlencode({"label__name": name})


def split_filter(column: str) -> str:
    if column == "excluded":
        return "&excluded__exact=1"
    if column == "total":
        return ""
    return f"&split__exact={column}&excluded__exact=0"
