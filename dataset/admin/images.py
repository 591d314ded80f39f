"""Dataset images: the curation table, its filters and bulk actions, the import form, thumbnails."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.cache import cache_control

from dataset import groups, imports, selectors, services
from dataset.admin.datasets import import_report_show
from dataset.forms import ExcludeForm, ImportForm, ResplitForm, SetGroupForm, SetLabelForm, SetSplitForm
from dataset.imaging import thumbnail_jpeg
from dataset.models import Dataset, DatasetImage, ImportRun, Label
from dataset.selectors import file_read
from dataset.validation import CONTENT_TYPES

THUMBNAIL_SIDE = 96
PREVIEW_SIDE = 640


class LabelNameFilter(admin.AllValuesFieldListFilter):
    """Labels by name, so one filter serves every dataset (and "unlabelled" shows as empty)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "label"


class NearDuplicateFilter(admin.SimpleListFilter):
    title = "near-duplicates"
    parameter_name = "near_duplicate"

    def lookups(self, request, model_admin):
        return [("any", "Has a near-duplicate"), ("across", "Near-duplicate in another split")]

    def queryset(self, request, queryset):
        if self.value() not in ("any", "across"):
            return queryset
        ids = selectors.near_duplicate_ids(images=queryset, across_splits=self.value() == "across")
        return queryset.filter(pk__in=ids)


@admin.register(DatasetImage)
class DatasetImageAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail", "__str__", "dataset", "label", "group", "split", "source", "excluded", "size", "created_at",
    )
    list_display_links = ("thumbnail", "__str__")
    list_filter = (
        "dataset", ("label__name", LabelNameFilter), "group", "split", "source", "excluded", NearDuplicateFilter,
    )
    list_select_related = ("dataset", "label")
    search_fields = ("original_name", "sha256", "label__name", "group", "exclusion_reason")
    list_per_page = 60
    actions = ["set_label", "set_group", "set_split", "exclude_images", "include_images", "resplit"]
    fields = (
        "preview", "near_duplicates", "dataset", "label", "group", "split", "excluded", "exclusion_reason", "original_name",
        "source", "size", "image_format", "sha256", "perceptual_hash", "created_at", "updated_at",
    )
    readonly_fields = (
        "preview", "dataset", "near_duplicates", "original_name", "source", "size", "image_format", "sha256",
        "perceptual_hash", "created_at", "updated_at",
    )

    def get_urls(self):
        own = [
            path("import/", self.admin_site.admin_view(self.import_view), name="dataset_datasetimage_import"),
            path("<int:pk>/thumbnail/", self.admin_site.admin_view(self.thumbnail_view),
                 name="dataset_datasetimage_thumbnail"),
            path("<int:pk>/preview/", self.admin_site.admin_view(self.preview_view),
                 name="dataset_datasetimage_preview"),
            path("<int:pk>/original/", self.admin_site.admin_view(self.original_view),
                 name="dataset_datasetimage_original"),
        ]
        return own + super().get_urls()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "label":
            image_id = request.resolver_match.kwargs.get("object_id")
            image = DatasetImage.objects.filter(pk=image_id).first() if image_id else None
            kwargs["queryset"] = Label.objects.filter(dataset=image.dataset_id) if image else Label.objects.none()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # ----- columns and detail fields

    @admin.display(description="")
    def thumbnail(self, image):
        return format_html(
            '<img src="{}" alt="" loading="lazy" style="max-width:{}px;max-height:{}px">',
            reverse("admin:dataset_datasetimage_thumbnail", args=[image.pk]), THUMBNAIL_SIDE, THUMBNAIL_SIDE,
        )

    @admin.display(description="Preview")
    def preview(self, image):
        return format_html(
            '<a href="{}"><img src="{}" alt="{}" style="max-width:{}px;max-height:{}px"></a>',
            reverse("admin:dataset_datasetimage_original", args=[image.pk]),
            reverse("admin:dataset_datasetimage_preview", args=[image.pk]),
            image, PREVIEW_SIDE, PREVIEW_SIDE,
        )

    @admin.display(description="Size")
    def size(self, image):
        return f"{image.width} × {image.height}"

    @admin.display(description="Near-duplicates")
    def near_duplicates(self, image):
        matches = selectors.near_duplicates_of(image=image)
        if not matches:
            return "None found."
        return format_html_join(
            "",
            '<a href="{}" style="display:inline-block;margin-right:1em;text-align:center{}">'
            '<img src="{}" alt=""><br>{} · {} · {} · distance {}</a>',
            (
                (
                    reverse("admin:dataset_datasetimage_change", args=[other.pk]),
                    ";color:#ba2121;font-weight:bold" if other.split != image.split else "",
                    reverse("admin:dataset_datasetimage_thumbnail", args=[other.pk]),
                    other,
                    other.label or "unlabelled",
                    other.get_split_display(),
                    distance,
                )
                for other, distance in matches
            ),
        )

    # ----- image views (staff only, through admin_view; content type from the validated format)

    def image_or_404(self, request, pk):
        image = get_object_or_404(DatasetImage, pk=pk)
        if not self.has_view_permission(request, image):
            raise PermissionDenied
        return image

    def image_response(self, content: bytes, content_type: str) -> HttpResponse:
        response = HttpResponse(content, content_type=content_type)
        response["Content-Disposition"] = "inline"
        return response

    @method_decorator(cache_control(private=True, max_age=86400))
    def thumbnail_view(self, request, pk):
        image = self.image_or_404(request, pk)
        return self.image_response(thumbnail_jpeg(file_read(file=image.file), side=THUMBNAIL_SIDE), "image/jpeg")

    @method_decorator(cache_control(private=True, max_age=86400))
    def preview_view(self, request, pk):
        image = self.image_or_404(request, pk)
        return self.image_response(thumbnail_jpeg(file_read(file=image.file), side=PREVIEW_SIDE), "image/jpeg")

    @method_decorator(cache_control(private=True, max_age=86400))
    def original_view(self, request, pk):
        image = self.image_or_404(request, pk)
        return self.image_response(file_read(file=image.file), CONTENT_TYPES[image.image_format])

    # ----- adding images: one import page for a single photo, many photos or a zip

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:dataset_datasetimage_import"))

    def import_view(self, request):
        if not self.has_add_permission(request):
            raise PermissionDenied
        datasets = list(Dataset.objects.values_list("pk", flat=True)[:2])
        initial = {"dataset": datasets[0]} if len(datasets) == 1 else {}
        form = ImportForm(request.POST or None, request.FILES or None, initial={**initial, **request.GET.dict()})
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                outcome = imports.dataset_import_start(
                    dataset=data["dataset"], archive=data["archive"], files=data["files"], label_name=data["label"],
                    split=data["split"], source=DatasetImage.Source.UPLOAD, user=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return self.import_started(request, outcome, dataset=data["dataset"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Import images",
            "form": form,
        }
        return TemplateResponse(request, "admin/dataset/datasetimage/import.html", context)

    def import_started(self, request, outcome, *, dataset):
        """A queued run leads to its dataset's page, which shows its progress; a finished import
        to the images of the dataset, with its report."""
        if isinstance(outcome, ImportRun):
            self.message_user(
                request,
                f"“{outcome.archive_name}” ({outcome.total} files) is importing on the queue; "
                "this page shows how far it got.",
            )
            return HttpResponseRedirect(reverse("admin:dataset_dataset_change", args=[dataset.pk]))
        import_report_show(self, request, outcome)
        return HttpResponseRedirect(reverse("admin:dataset_datasetimage_changelist") + f"?dataset__id__exact={dataset.pk}")

    # ----- bulk actions: an intermediate page where the action needs a choice

    def form_action(self, request, queryset, *, form_class, action, title, button, apply, **form_kwargs):
        """Show `form_class` for the selected images; once submitted and valid, `apply` its data
        (it calls one service and returns the sentence to show)."""
        form = form_class(request.POST if "apply" in request.POST else None, **form_kwargs)
        if form.is_valid():
            self.message_user(request, apply(form.cleaned_data))
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "form": form,
            "queryset": queryset,
            "action": action,
            "button": button,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/dataset/datasetimage/action_form.html", context)

    @admin.action(description="Set label…", permissions=["change"])
    def set_label(self, request, queryset):
        datasets = list(Dataset.objects.filter(images__in=queryset).distinct()[:2])
        if len(datasets) != 1:
            self.message_user(request, "Select images of one dataset to set their label.", messages.ERROR)
            return None

        def apply(data):
            count = services.dataset_images_relabel(images=queryset, label=data["label"])
            return f"{count} images now labelled {data['label'] or 'unlabelled'}."

        return self.form_action(
            request, queryset, form_class=SetLabelForm, dataset=datasets[0], action="set_label",
            title="Set the label of these images", button="Set label", apply=apply,
        )

    @admin.action(description="Set group…", permissions=["change"])
    def set_group(self, request, queryset):
        def apply(data):
            count = groups.dataset_images_set_group(images=queryset, group=data["group"])
            return f"{count} images now in the group {data['group'] or '(none)'}."

        return self.form_action(
            request, queryset, form_class=SetGroupForm, action="set_group",
            title="Set the group of these images", button="Set group", apply=apply,
        )

    @admin.action(description="Set split…", permissions=["change"])
    def set_split(self, request, queryset):
        def apply(data):
            count = services.dataset_images_set_split(images=queryset, split=data["split"])
            return f"{count} images moved to {data['split']}."

        return self.form_action(
            request, queryset, form_class=SetSplitForm, action="set_split",
            title="Move these images to a split", button="Set split", apply=apply,
        )

    @admin.action(description="Exclude from training…", permissions=["change"])
    def exclude_images(self, request, queryset):
        def apply(data):
            count = services.dataset_images_exclude(images=queryset, reason=data["reason"])
            return f"{count} images excluded from training."

        return self.form_action(
            request, queryset, form_class=ExcludeForm, action="exclude_images",
            title="Exclude these images from training", button="Exclude", apply=apply,
        )

    @admin.action(description="Include in training", permissions=["change"])
    def include_images(self, request, queryset):
        count = services.dataset_images_include(images=queryset)
        self.message_user(request, f"{count} images included in training.")

    @admin.action(description="Stratified re-split…", permissions=["change"])
    def resplit(self, request, queryset):
        def apply(data):
            counts = services.dataset_images_resplit(
                images=queryset, train=data["train"] / 100, val=data["val"] / 100, test=data["test"] / 100,
                seed=data["seed"],
            )
            return "Re-split: " + ", ".join(f"{n} {split}" for split, n in counts.items()) + "."

        return self.form_action(
            request, queryset, form_class=ResplitForm, action="resplit",
            title="Re-split these images, per label, keeping near-duplicates together", button="Re-split",
            apply=apply,
        )

    def delete_model(self, request, obj):
        services.dataset_images_delete(images=DatasetImage.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        services.dataset_images_delete(images=queryset)
