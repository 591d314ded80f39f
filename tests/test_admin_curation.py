"""Curation through the real admin pages, as a staff user, and refusal for everyone else."""

import io
import re
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from dataset import services
from dataset.models import DatasetImage, Label
from tests.photos import PHOTO_NAMES, encode, jpeg, photo

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:dataset_datasetimage_changelist")
IMPORT = reverse("admin:dataset_datasetimage_import")
HOSTILE_LABEL = "<img src=x onerror=alert(1)>"


def add(dataset, name="coffee", *, label=None, split="train", data=None, **kwargs):
    return services.dataset_image_create(
        dataset=dataset, data=data or jpeg(name), name=f"{name}.jpg", label=label, split=split, **kwargs
    )


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def post_action(client, action, images, **data):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [image.pk for image in images], **data}, follow=True
    )


@pytest.fixture
def labels(dataset):
    return Label.objects.create(dataset=dataset, name="coffee"), Label.objects.create(dataset=dataset, name="not_coffee")


@pytest.fixture
def images(dataset, labels):
    coffee, not_coffee = labels
    return [add(dataset, name, label=coffee if i % 2 == 0 else not_coffee) for i, name in enumerate(PHOTO_NAMES)]


# ----- who may enter


@pytest.mark.parametrize("url_name", ["changelist", "import", "thumbnail", "original", "change"])
def test_anonymous_and_non_staff_users_are_refused(client, images, url_name):
    args = [] if url_name in ("changelist", "import") else [images[0].pk]
    url = reverse(f"admin:dataset_datasetimage_{url_name}", args=args)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    user = get_user_model().objects.create_user("visitor", password="a-long-test-password")
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_non_staff_cannot_run_an_action(client, images):
    client.force_login(get_user_model().objects.create_user("visitor", password="a-long-test-password"))
    post_action(client, "exclude_images", images, apply="1", reason="spam")
    assert not DatasetImage.objects.filter(excluded=True).exists()


# ----- looking at images


def test_changelist_shows_thumbnails_that_are_small_jpegs(staff_client, images):
    response = staff_client.get(CHANGELIST)
    assert response.status_code == 200
    thumbnail_urls = re.findall(r'<img src="([^"]+/thumbnail/)"', response.content.decode())
    assert len(thumbnail_urls) == len(images)
    thumbnail = staff_client.get(thumbnail_urls[0])
    assert thumbnail["Content-Type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumbnail.content)) as image:
        assert max(image.size) <= 96


def test_original_is_served_with_its_own_content_type_and_nosniff(staff_client, dataset):
    image = add(dataset, data=encode(photo("chelsea"), "PNG"))
    response = staff_client.get(reverse("admin:dataset_datasetimage_original", args=[image.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == image.file.open("rb").read()


def test_detail_page_has_a_large_preview_and_flags_near_duplicates(staff_client, dataset, labels):
    original = add(dataset, "coffee", label=labels[0], split="train")
    resized = add(dataset, data=encode(photo("coffee", size=(300, 200)), "JPEG", quality=70), split="test")
    other = add(dataset, "rocket", split="test")
    page = staff_client.get(reverse("admin:dataset_datasetimage_change", args=[original.pk])).content.decode()
    assert reverse("admin:dataset_datasetimage_preview", args=[original.pk]) in page
    assert reverse("admin:dataset_datasetimage_change", args=[resized.pk]) in page
    assert reverse("admin:dataset_datasetimage_change", args=[other.pk]) not in page

    across = staff_client.get(CHANGELIST, {"near_duplicate": "across"}).context["cl"].result_list
    assert {image.pk for image in across} == {original.pk, resized.pk}
    services.dataset_images_set_split(images=DatasetImage.objects.filter(pk=resized.pk), split="train")
    assert not staff_client.get(CHANGELIST, {"near_duplicate": "across"}).context["cl"].result_list
    assert len(staff_client.get(CHANGELIST, {"near_duplicate": "any"}).context["cl"].result_list) == 2


def test_filters_and_search(staff_client, images, labels):
    response = staff_client.get(CHANGELIST, {"label__name": "coffee"})
    assert {image.label for image in response.context["cl"].result_list} == {labels[0]}
    response = staff_client.get(CHANGELIST, {"q": "rocket"})
    assert [image.original_name for image in response.context["cl"].result_list] == ["rocket.jpg"]


def test_dataset_page_counts_images_per_label_and_split(staff_client, dataset, images):
    services.dataset_images_exclude(images=DatasetImage.objects.filter(pk=images[0].pk), reason="blurry")
    page = staff_client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])).content.decode()
    table = page[page.index("<table><thead><tr><th>label</th>"):]
    table = table[: table.index("</table>")]
    rows = re.findall(r"<tr><td>([^<]+)</td>(.*?)</tr>", table)
    counts = {name: re.findall(r">(\d+)</a>", cells) for name, cells in rows}
    # columns: train, val, test, unassigned, excluded, total
    assert counts == {"coffee": ["2", "0", "0", "0", "1", "3"], "not_coffee": ["3", "0", "0", "0", "0", "3"]}


# ----- importing from the admin


def test_admin_zip_import_and_messages(staff_client, dataset):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photos/coffee/a.jpg", jpeg("coffee"))
        archive.writestr("photos/not_coffee/b.jpg", jpeg("chelsea"))
        archive.writestr("photos/not_coffee/notes.jpg", b"not an image")
    upload = SimpleUploadedFile("photos.zip", out.getvalue(), content_type="application/zip")
    response = staff_client.post(IMPORT, {"dataset": dataset.pk, "archive": upload, "split": "auto"}, follow=True)
    shown = messages_of(response)
    assert "2 imported, 0 duplicates skipped, 1 rejected." in shown
    assert any("“photos/not_coffee/notes.jpg” is not an image" in message for message in shown)
    assert sorted(dataset.images.values_list("label__name", flat=True)) == ["coffee", "not_coffee"]


def test_admin_upload_of_many_photos_with_one_label_and_a_duplicate(staff_client, dataset):
    first = add(dataset, "coffee")
    files = [SimpleUploadedFile(f"{name}.jpg", jpeg(name), "image/jpeg") for name in ("coffee", "chelsea", "rocket")]
    response = staff_client.post(
        IMPORT, {"dataset": dataset.pk, "files": files, "label": "not coffee", "split": "val"}, follow=True
    )
    shown = messages_of(response)
    assert "2 imported, 1 duplicates skipped, 0 rejected." in shown
    assert any("is already in the dataset as" in m and f"(image #{first.pk})" in m for m in shown)
    assert sorted(dataset.images.filter(label__name="not coffee").values_list("split", flat=True)) == ["val", "val"]


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"", "is empty"),
        (encode(photo("chelsea").convert("P"), "GIF")[:2000], "damaged or incomplete"),
        (b"%PDF-1.4", "is not an image"),
    ],
)
def test_admin_upload_of_bad_files_stores_nothing(staff_client, dataset, media_root, data, sentence):
    upload = SimpleUploadedFile("bad.jpg", data, "image/jpeg")
    response = staff_client.post(IMPORT, {"dataset": dataset.pk, "files": [upload], "split": "auto"}, follow=True)
    assert any(sentence in message for message in messages_of(response)) or sentence in response.content.decode()
    assert not DatasetImage.objects.exists()
    assert not list(media_root.rglob("*.*"))


def test_import_form_needs_exactly_one_source(staff_client, dataset):
    response = staff_client.post(IMPORT, {"dataset": dataset.pk, "split": "auto"})
    assert response.status_code == 200
    assert "Choose either a zip archive or photos to upload." in response.content.decode()


def test_add_button_leads_to_the_import_page(staff_client):
    response = staff_client.get(reverse("admin:dataset_datasetimage_add"))
    assert response.status_code == 302 and response["Location"] == IMPORT


# ----- bulk actions


def test_set_label_asks_then_applies(staff_client, images, labels):
    _, not_coffee = labels
    selected = images[:3]
    page = post_action(staff_client, "set_label", selected)
    assert page.status_code == 200 and "Set the label of these images" in page.content.decode()
    assert DatasetImage.objects.filter(label=not_coffee).count() == 3
    response = post_action(staff_client, "set_label", selected, apply="1", label=not_coffee.pk)
    assert "3 images now labelled not_coffee." in messages_of(response)
    assert set(DatasetImage.objects.filter(pk__in=[i.pk for i in selected]).values_list("label", flat=True)) == {
        not_coffee.pk
    }


def test_set_label_refuses_a_label_of_another_dataset(staff_client, images):
    from dataset.models import Dataset

    other = Dataset.objects.create(name="Other", slug="other")
    foreign = Label.objects.create(dataset=other, name="foreign")
    response = post_action(staff_client, "set_label", images[:1], apply="1", label=foreign.pk)
    assert "Select a valid choice" in response.content.decode()
    assert not DatasetImage.objects.filter(label=foreign).exists()


def test_groups_are_shown_filtered_searched_edited_and_set_in_bulk(staff_client, images):
    response = post_action(staff_client, "set_group", images[:2], apply="1", group=" matcha ")
    assert "2 images now in the group matcha." in messages_of(response)
    assert list(DatasetImage.objects.filter(group="matcha").order_by("pk")) == images[:2]
    assert sorted(staff_client.get(CHANGELIST, {"group": "matcha"}).context["cl"].result_list, key=lambda i: i.pk) \
        == images[:2]
    assert len(staff_client.get(CHANGELIST, {"q": "matcha"}).context["cl"].result_list) == 2
    page = staff_client.get(CHANGELIST).content.decode()
    assert "By group" in page and '<td class="field-group">matcha</td>' in page
    change = reverse("admin:dataset_datasetimage_change", args=[images[2].pk])
    form = staff_client.get(change).context["adminform"].form
    assert "group" in form.fields
    data = {name: value for name, value in form.initial.items() if name in form.fields and value is not None}
    staff_client.post(change, {**data, "group": "tea_cup"})
    assert DatasetImage.objects.get(pk=images[2].pk).group == "tea_cup"
    post_action(staff_client, "set_group", images[:1], apply="1", group="")
    assert DatasetImage.objects.get(pk=images[0].pk).group == ""


def test_set_split_exclude_and_include(staff_client, images):
    post_action(staff_client, "set_split", images[:2], apply="1", split="test")
    assert DatasetImage.objects.filter(split="test").count() == 2
    response = post_action(staff_client, "exclude_images", images[:2], apply="1", reason="not a photo")
    assert "2 images excluded from training." in messages_of(response)
    assert set(DatasetImage.objects.filter(excluded=True).values_list("exclusion_reason", flat=True)) == {
        "not a photo"
    }
    post_action(staff_client, "include_images", images[:1])
    assert DatasetImage.objects.filter(excluded=True).count() == 1


def test_resplit_action_validates_shares(staff_client, images):
    response = post_action(staff_client, "resplit", images, apply="1", train=70, val=20, test=20, seed=0)
    assert "The three shares must add up to 100 %." in response.content.decode()
    response = post_action(staff_client, "resplit", images, apply="1", train=50, val=0, test=50, seed=3)
    # three photos per label: round(1.5) = 2 to train, the rest to test
    assert "Re-split: 4 train, 0 val, 2 test." in messages_of(response)
    assert not DatasetImage.objects.filter(split="val").exists()


def test_delete_removes_files(staff_client, images, media_root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_action(staff_client, "delete_selected", images[:2], post="yes")
    assert DatasetImage.objects.count() == len(images) - 2
    assert len(list((media_root / "datasets").rglob("*.jpg"))) == len(images) - 2


# ----- a label with HTML in it is text everywhere


def test_html_in_a_label_name_is_escaped_everywhere(staff_client, dataset):
    label = Label.objects.create(dataset=dataset, name=HOSTILE_LABEL)
    image = add(dataset, label=label)
    pages = [
        staff_client.get(CHANGELIST),
        staff_client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])),
        staff_client.get(reverse("admin:dataset_dataset_changelist")),
        staff_client.get(reverse("admin:dataset_datasetimage_change", args=[image.pk])),
        post_action(staff_client, "set_label", [image]),
    ]
    duplicate = staff_client.post(
        IMPORT, {"dataset": dataset.pk, "files": [SimpleUploadedFile("again.jpg", jpeg(), "image/jpeg")],
                 "split": "auto"}, follow=True,
    )
    for response in [*pages, duplicate]:
        html = response.content.decode()
        assert HOSTILE_LABEL not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0].content.decode()


def test_admin_upload_over_the_byte_limit_is_refused_with_the_limit(staff_client, dataset, settings, media_root):
    settings.MAX_UPLOAD_BYTES = 20_000
    upload = SimpleUploadedFile("big.jpg", jpeg("astronaut", quality=95), "image/jpeg")
    response = staff_client.post(IMPORT, {"dataset": dataset.pk, "files": [upload], "split": "auto"}, follow=True)
    assert any("“big.jpg” is" in m and "the limit is 19.5 KB" in m for m in messages_of(response))
    assert not DatasetImage.objects.exists() and not list(media_root.rglob("*.*"))


def test_admin_zip_with_traversal_members_writes_nothing_outside(staff_client, dataset, tmp_path, media_root):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("coffee/../../../escaped.jpg", jpeg("coffee"))
        archive.writestr("coffee/ok.jpg", jpeg("chelsea"))
    upload = SimpleUploadedFile("photos.zip", out.getvalue(), content_type="application/zip")
    response = staff_client.post(IMPORT, {"dataset": dataset.pk, "archive": upload, "split": "auto"}, follow=True)
    assert any("points outside the archive" in m for m in messages_of(response))
    assert list(dataset.images.values_list("original_name", flat=True)) == ["coffee/ok.jpg"]
    assert not list(tmp_path.parent.rglob("escaped.jpg"))
