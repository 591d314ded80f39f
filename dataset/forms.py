from django import forms
from django.conf import settings

from dataset.models import Dataset, DatasetImage, Label
from dataset.services import AUTO_SPLIT
from dataset.validation import human_size

SPLIT_FOR_NEW_IMAGES = [(AUTO_SPLIT, "Automatic: a stable 70 / 15 / 15 split by content"), *DatasetImage.Split.choices]


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    widget = MultipleFileInput

    def clean(self, data, initial=None):
        if isinstance(data, (list, tuple)):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class ImportForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.all())
    archive = forms.FileField(
        required=False,
        label="Zip archive",
        help_text="One folder per label: coffee/…, not_coffee/… (a single top folder around them is fine).",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )
    files = MultipleFileField(
        required=False,
        label="Or photos",
        help_text="Select many files; they all get the label below.",
        widget=MultipleFileInput(attrs={"accept": "image/*"}),
    )
    label = forms.CharField(
        required=False,
        max_length=100,
        help_text="Label for the photos (created if new); for a zip, only files outside a label folder get it.",
    )
    split = forms.ChoiceField(choices=SPLIT_FOR_NEW_IMAGES, initial=AUTO_SPLIT)

    def clean(self):
        data = super().clean()
        archive, files = data.get("archive"), data.get("files")
        if bool(archive) == bool(files):
            raise forms.ValidationError("Choose either a zip archive or photos to upload.")
        if archive and archive.size > settings.MAX_IMPORT_ZIP_BYTES:
            raise forms.ValidationError(
                f"The zip is {human_size(archive.size)}; the limit is {human_size(settings.MAX_IMPORT_ZIP_BYTES)}. "
                "Split it, or use the import_images command on the server."
            )
        return data


class SetLabelForm(forms.Form):
    label = forms.ModelChoiceField(queryset=Label.objects.none(), required=False, empty_label="(unlabelled)")

    def __init__(self, *args, dataset: Dataset, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].queryset = dataset.labels.all()


class SetSplitForm(forms.Form):
    split = forms.ChoiceField(choices=DatasetImage.Split.choices)


class SetGroupForm(forms.Form):
    group = forms.CharField(
        required=False, max_length=DatasetImage._meta.get_field("group").max_length,
        help_text="A short tag of what the photos show, e.g. matcha or latte_art; empty removes it.",
    )


class ExcludeForm(forms.Form):
    reason = forms.CharField(required=False, max_length=255, help_text="Why, for the next curator (optional).")


class ResplitForm(forms.Form):
    train = forms.IntegerField(min_value=0, max_value=100, initial=70, label="Train %")
    val = forms.IntegerField(min_value=0, max_value=100, initial=15, label="Validation %")
    test = forms.IntegerField(min_value=0, max_value=100, initial=15, label="Test %")
    seed = forms.IntegerField(initial=0, help_text="The same seed and photos always give the same split.")

    def clean(self):
        data = super().clean()
        if all(key in data for key in ("train", "val", "test")) and data["train"] + data["val"] + data["test"] != 100:
            raise forms.ValidationError("The three shares must add up to 100 %.")
        return data
