"""The curator's workspace through the real admin pages: the home, Train from a dataset, a training's
progress, the version report with its curves, the comparison, and the refusals. Versions here are
rows with metrics computed by the real evaluation code on chosen probabilities (no training);
tests/test_admin_browser.py trains for real in a browser."""

import re

import numpy as np
import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from classifier.candidates import candidate_report
from classifier.ml.metrics import evaluate, photo_scores, threshold_sweep
from classifier.ml.train import STAGES, TrainSettings, data_fingerprint
from classifier.models import Activation, FieldAnswer, FieldScore, FieldScoring, ModelVersion, PredictionJob
from classifier.selectors import training_examples
from classifier.selectors_review import review_queue, review_waiting_counts
from classifier.services.retraining import candidate_activate_if_better, dataset_retrain_if_due
from classifier.templatetags.classifier_format import percentage
from classifier.workspace import settings_twin
from dataset.admin.datasets import DatasetAdmin
from dataset.models import Dataset, DatasetImage, Label
from dataset.services import dataset_image_create
from tests.photos import PHOTO_NAMES, jpeg

pytestmark = pytest.mark.django_db
LABELS = ["coffee", "not_coffee"]
HOME = reverse("admin:index")


@pytest.fixture
def photos(dataset):
    """Six photos of two labels: four train, two test (one per label), and a val pair."""
    coffee, other = (Label.objects.create(dataset=dataset, name=name) for name in LABELS)
    splits = ["train", "train", "train", "train", "test", "test"]
    images = [
        dataset_image_create(dataset=dataset, data=jpeg(name), name=f"{name}.jpg", label=coffee if i % 2 else other,
                             split=split)
        for i, (name, split) in enumerate(zip(PHOTO_NAMES, splits))
    ]
    images.append(dataset_image_create(dataset=dataset, data=jpeg("coffee", size=(300, 200)), name="val1.jpg",
                                       label=coffee, split="val"))
    images.append(dataset_image_create(dataset=dataset, data=jpeg("rocket", size=(300, 200)), name="val2.jpg",
                                       label=other, split="val"))
    return images


def version_with(dataset, number, test_p1, *, active=False, fingerprint="", tflite_bytes=8_904_552, threshold=0.5):
    """A ready version whose test photos (the dataset's) got P(not_coffee) = test_p1, with the
    metrics the real evaluation computes from them, and its per-photo scores."""
    test = list(dataset.images.filter(split="test").order_by("sha256").select_related("label"))
    labels = np.array([LABELS.index(image.label.name) for image in test])
    probabilities = np.array([[1 - p, p] for p in test_p1])
    keys = [image.sha256 for image in test]
    split_metrics = evaluate(probabilities, labels, class_names=LABELS, threshold=threshold, keys=keys)
    split_metrics["scores"] = photo_scores(probabilities, labels, keys)
    return ModelVersion.objects.create(
        dataset=dataset, number=number, backbone="mobilenet_025", status=ModelVersion.Status.READY,
        is_active=active, labels=LABELS, threshold=threshold, artifact_dir=f"models/{dataset.slug}/{number}",
        training_settings=TrainSettings(backbone="mobilenet_025").as_dict(), training_seconds=42.5,
        finished_at=timezone.now(),
        metrics={"val": {**split_metrics}, "test": split_metrics, "tflite_bytes": tflite_bytes,
                 "fingerprint": fingerprint, "head": {"l2": 0.001}},
    )


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


# ----- pure evaluation helpers


def test_threshold_sweep_runs_from_nothing_positive_to_everything_positive():
    scores = np.array([0.9, 0.8, 0.3, 0.1])
    rows = threshold_sweep(scores, np.array([True, False, True, False]))
    assert (rows[0]["tpr"], rows[0]["fpr"], rows[0]["precision"]) == (0.0, 0.0, 1.0)
    assert (rows[-1]["tpr"], rows[-1]["fpr"], rows[-1]["threshold"]) == (1.0, 1.0, 0.1)
    at_08 = next(row for row in rows if row["threshold"] == 0.8)
    assert (at_08["precision"], at_08["recall"], at_08["accuracy"]) == (0.5, 0.5, 0.5)


# ----- the home


def test_home_shows_each_dataset_with_its_active_version_and_what_needs_a_look(staff_client, dataset, photos):
    version = version_with(dataset, 1, [0.9, 0.2], active=True)
    for feedback, decision in (("wrong", "answered"), ("", "unsure"), ("", "unsure")):
        PredictionJob.objects.create(dataset=dataset, image="predictions/x.jpg", image_format="JPEG", status="done",
                                     label="coffee", model_version=version, finished_at=timezone.now(),
                                     feedback=feedback, decision=decision)
    page = staff_client.get(HOME).content.decode()
    row = re.search(r'<th scope="row"><a href="[^"]+">Coffee or not</a></th>(.*?)</tr>', page, re.DOTALL).group(1)
    cells = re.findall(r'<td class="number"[^>]*>(.*?)</td>', row, re.DOTALL)
    assert cells[0].startswith(f"{len(photos)}<br>")
    assert "coffee v1" in row and "badge-active" in row
    test_accuracy = version.test_accuracy()
    assert cells[1] == percentage(test_accuracy)
    assert cells[2] == "3"  # answered today
    wrong_link, unsure_link = (re.search(r'href="([^"]+)">(\d+)<', cell).groups() for cell in cells[3:5])
    assert wrong_link[1] == "1" and unsure_link[1] == "2"  # waiting in the review queue
    queue = staff_client.get(unsure_link[0].replace("&amp;", "&")).context
    assert queue["dataset"] == dataset and len(queue["jobs"]) == 3
    # the workflow's pages in order, the task queue's tables folded away last
    assert page.index("<strong>Datasets</strong>") < page.index("<strong>Versions</strong>") < page.index(
        "<strong>Predictions</strong>")
    assert page.index('class="app-dataset') < page.index('class="app-classifier')
    internals = page.index('<details class="internals">')
    assert page.index('class="app-django_q') > internals


def test_home_shows_a_training_in_progress_with_its_step_and_time_left(staff_client, dataset, photos):
    version_with(dataset, 1, [0.9, 0.2])  # no stage timings stored: the estimate comes from the pace
    training = ModelVersion.objects.create(
        dataset=dataset, number=2, backbone="mobilenet_025", status=ModelVersion.Status.TRAINING, stage="head",
        progress=0.5, started_at=timezone.now() - timezone.timedelta(seconds=30), artifact_dir="models/coffee/2",
    )
    page = staff_client.get(HOME).content.decode()
    assert "coffee v2: Step 2 of 4: head" in page
    state = staff_client.get(reverse("admin:classifier_modelversion_progress", args=[training.pk])).json()
    assert (state["step"], state["stages"], state["stage"]) == (2, len(STAGES), "head")
    assert 0.6 < state["done"] < 0.8  # the embeddings' share plus half the head's
    assert state["left"] == pytest.approx(state["elapsed"] * (1 - state["done"]) / state["done"], rel=0.01)
    assert "left" in state["text"]


# ----- training from the dataset page and list


def test_dataset_page_has_the_versions_and_a_train_button_without_replacing_the_dataset_admin(
    staff_client, dataset, photos
):
    assert type(admin.site._registry[Dataset]) is DatasetAdmin
    version_with(dataset, 1, [0.9, 0.2], active=True)
    page = staff_client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])).content.decode()
    train_url = reverse("admin:classifier_modelversion_train", args=[dataset.pk])
    assert f'href="{train_url}"' in page and "coffee v1" in page and "badge-active" in page


def test_train_form_offers_the_commands_choices_and_queues_a_version(staff_client, dataset, photos):
    url = reverse("admin:classifier_modelversion_train", args=[dataset.pk])
    form = staff_client.get(url).content.decode()
    assert '<option value="mobilenet_025">' in form and 'name="epochs"' in form
    response = staff_client.post(url, {"backbone": "mobilenet_025", "epochs": "50"})
    version = ModelVersion.objects.get(dataset=dataset)
    assert response.status_code == 302 and response["Location"].endswith(f"/{version.pk}/change/")
    assert (version.backbone, version.training_settings["epochs"], version.status) == ("mobilenet_025", 50, "queued")
    page = staff_client.get(response["Location"]).content.decode()
    assert "<title>coffee v1 |" in page and 'class="training-progress"' in page


def test_train_form_can_ask_for_the_new_version_to_be_activated_if_better(staff_client, dataset, photos):
    url = reverse("admin:classifier_modelversion_train", args=[dataset.pk])
    assert 'name="activate_when_better"' in staff_client.get(url).content.decode()
    asked = staff_client.post(url, {"backbone": "mobilenet_025", "epochs": "50", "activate_when_better": "on"},
                              follow=True)
    assert "Once ready, it is activated if it beats the active version" in " ".join(messages_of(asked))
    staff_client.post(url, {"backbone": "mobilenet_025", "epochs": "50"})
    assert list(ModelVersion.objects.order_by("number").values_list("number", "activate_when_better")) == [
        (1, True), (2, False)]


def test_train_form_refuses_bad_choices_and_untrainable_data_in_a_sentence(staff_client, dataset, photos):
    url = reverse("admin:classifier_modelversion_train", args=[dataset.pk])
    response = staff_client.post(url, {"backbone": "resnet9000", "epochs": "0"})
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode() and not ModelVersion.objects.exists()
    dataset.images.filter(split="val").update(split="train")
    page = staff_client.get(url).content.decode()
    assert "cannot train yet: The validation split is empty" in page
    response = staff_client.post(url, {"backbone": "mobilenet_025", "epochs": "10"})
    assert response.status_code == 400 and "The validation split is empty" in response.content.decode()
    assert not ModelVersion.objects.exists()
    dataset_page = staff_client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])).content.decode()
    assert "Training is not possible yet: The validation split is empty" in dataset_page


def test_the_dataset_list_trains_with_defaults_or_opens_the_form(staff_client, dataset, photos):
    changelist = reverse("admin:dataset_dataset_changelist")
    response = staff_client.post(changelist, {"action": "train_with_options", "_selected_action": [dataset.pk]})
    assert response["Location"] == reverse("admin:classifier_modelversion_train", args=[dataset.pk])
    empty = Dataset.objects.create(name="Empty", slug="empty")
    response = staff_client.post(changelist, {"action": "retrain", "_selected_action": [empty.pk]}, follow=True)
    assert "Training needs at least 2 labels with photos" in " ".join(messages_of(response))
    assert not ModelVersion.objects.exists()


def test_training_pages_are_for_staff_with_the_permission(client, dataset, photos):
    version = version_with(dataset, 1, [0.9, 0.2])
    urls = [reverse("admin:classifier_modelversion_train", args=[dataset.pk]),
            reverse("admin:classifier_modelversion_progress", args=[version.pk])]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    viewer = get_user_model().objects.create_user("viewer", password="a-long-test-password", is_staff=True)
    client.force_login(viewer)
    assert client.post(urls[0], {"backbone": "mobilenet_025", "epochs": "5"}).status_code == 403
    assert ModelVersion.objects.count() == 1


def test_a_retrain_of_unchanged_data_says_it_gives_the_same_model(staff_client, dataset, photos):
    examples, names = training_examples(dataset=dataset)
    settings = TrainSettings(backbone="mobilenet_025", epochs=500)
    first = version_with(dataset, 1, [0.9, 0.2], fingerprint=data_fingerprint(examples, names, settings))
    assert settings_twin(dataset=dataset, settings=settings) == first
    assert settings_twin(dataset=dataset, settings=TrainSettings(backbone="mobilenet_025", epochs=400)) is None
    response = staff_client.post(reverse("admin:classifier_modelversion_train", args=[dataset.pk]),
                                 {"backbone": "mobilenet_025", "epochs": "500"}, follow=True)
    assert "has the same data and settings as coffee v1: expect the same model." in " ".join(messages_of(response))
    second = version_with(dataset, 3, [0.9, 0.2], fingerprint=first.metrics["fingerprint"])
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[second.pk])).content.decode()
    assert re.search(r"Same data and settings as <a href=\"[^\"]+\">coffee v1</a>", page)


# ----- the version page and the comparison


def test_version_page_is_a_report_with_curves_and_the_threshold_in_use(staff_client, dataset, photos):
    version = version_with(dataset, 1, [0.8, 0.3], threshold=0.5)
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    assert "<h1>coffee v1</h1>" in page and "Change model version" not in page
    assert page.index("Activate this version") < page.index("<h2>Scores</h2>") < page.index("Training settings and files")
    assert page.count("<svg class=\"chart\"") == 3 and 'aria-label="ROC curve (test, positive: not_coffee)"' in page
    assert re.search(r'<tr class="chosen"><th scope="row">0.50 \(in use\)</th>', page)
    settings_table = re.search(r'<table class="settings-table">(.*?)</table>', page, re.DOTALL).group(1)
    assert "8.5\xa0MB" in settings_table and "8904552" not in page and "{" not in settings_table
    # the test photos: a coffee one answered not_coffee (0.8) and a not_coffee one answered coffee (0.3)
    assert page.count('class="photo-card"') == 4  # misclassified on val and on test (the same metrics)
    assert page.count("Fix the label") == 4
    assert 'class="cell shade-0 correct"' in page and 'class="cell shade-5 wrong"' in page
    assert "100 %" in page


def test_version_page_of_a_version_without_stored_scores_says_the_curves_are_not_available(staff_client, dataset,
                                                                                         photos):
    version = version_with(dataset, 1, [0.8, 0.3])
    for split in ("val", "test"):
        del version.metrics[split]["scores"]
    version.save()
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    assert "Not available for versions trained before" in page and "<svg class=\"chart\"" not in page


def test_compare_shows_formatted_values_a_coloured_difference_and_the_photos_answered_differently(
    staff_client, dataset, photos
):
    first = version_with(dataset, 1, [0.8, 0.3], tflite_bytes=8_904_552)
    second = version_with(dataset, 2, [0.8, 0.9], tflite_bytes=4_000_000, active=True)
    changelist = reverse("admin:classifier_modelversion_changelist")
    response = staff_client.post(changelist, {"action": "compare_selected", "_selected_action": [second.pk, first.pk]})
    page = staff_client.get(response["Location"]).content.decode()
    row = re.search(r"<tr><th scope=\"row\">test accuracy</th>(.*?)</tr>", page, re.DOTALL).group(1)
    values = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
    assert values[:2] == [percentage(first.test_accuracy()), percentage(second.test_accuracy())]
    assert 'class="number difference better"' in row and "+50.0 points" in values[2]
    size = re.search(r"<tr><th scope=\"row\">Model file \(TFLite\)</th>(.*?)</tr>", page, re.DOTALL).group(1)
    assert "8.5\xa0MB" in size and "3.8\xa0MB" in size and "better" in size
    assert "0.9837" not in page and "8904552" not in page
    changed = page.split("Test photos answered differently")[1].split("candidate-report")[0]
    assert changed.count('class="photo-card"') == 1  # the one test photo whose answer changed
    listing = staff_client.get(changelist).content.decode()
    assert listing.count('<span class="badge-active">active</span>') == 1 and "icon-no.svg" not in listing


def test_compare_refuses_a_single_version_with_a_sentence(staff_client, dataset, photos):
    version = version_with(dataset, 1, [0.8, 0.3])
    response = staff_client.get(reverse("admin:classifier_modelversion_compare") + f"?v={version.pk}", follow=True)
    assert "Pick 2 to 6 versions in the list" in " ".join(messages_of(response))


def test_the_fingerprint_changes_with_a_label_a_split_or_a_setting(dataset, photos):
    settings = TrainSettings(backbone="mobilenet_025")
    before = data_fingerprint(*training_examples(dataset=dataset), settings)
    assert data_fingerprint(*training_examples(dataset=dataset), settings) == before
    assert data_fingerprint(*training_examples(dataset=dataset), TrainSettings(backbone="mobilenet_025", epochs=9)) != before
    image = photos[0]
    image.split = "val"
    image.save(update_fields=["split"])
    moved = data_fingerprint(*training_examples(dataset=dataset), settings)
    assert moved != before
    image.label = Label.objects.get(dataset=dataset, name="coffee" if image.label.name != "coffee" else "not_coffee")
    image.save(update_fields=["label"])
    assert data_fingerprint(*training_examples(dataset=dataset), settings) not in (before, moved)


def test_deleting_datasets_from_the_list_takes_their_versions_and_jobs(staff_client, dataset, photos, media_root,
                                                                     django_capture_on_commit_callbacks):
    version = version_with(dataset, 1, [0.8, 0.3], active=True)
    PredictionJob.objects.create(dataset=dataset, image="predictions/x.jpg", image_format="JPEG", status="done",
                                 model_version=version)
    directory = media_root / version.artifact_dir
    directory.mkdir(parents=True)
    (directory / "model.tflite").write_bytes(b"weights")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:dataset_dataset_changelist"),
                                     {"action": "delete_selected", "_selected_action": [dataset.pk], "post": "yes"})
    assert response.status_code == 302
    assert not Dataset.objects.exists() and not ModelVersion.objects.exists() and not PredictionJob.objects.exists()
    assert not directory.exists()


# ----- the candidate report and the second confirmation


def field_job(dataset, version, label):
    """An answered job whose answer people confirmed right: a field photo whose true label is `label`."""
    return PredictionJob.objects.create(dataset=dataset, image="predictions/x.jpg", image_format="JPEG", status="done",
                                        label=label, model_version=version, finished_at=timezone.now(),
                                        feedback="correct")


def test_a_candidate_is_compared_photo_by_photo_and_activating_it_when_worse_asks_twice(staff_client, dataset,
                                                                                     photos):
    test = list(dataset.images.filter(split="test").order_by("sha256").select_related("label"))
    right = [0.9 if image.label.name == "not_coffee" else 0.1 for image in test]
    active = version_with(dataset, 1, right, active=True)
    candidate = version_with(dataset, 2, [1 - right[0], *right[1:]])  # breaks the first test photo
    coffee, other = field_job(dataset, active, "coffee"), field_job(dataset, active, "not_coffee")
    FieldAnswer.objects.bulk_create([  # on the field set the candidate fixes the coffee photo
        FieldAnswer(version=active, job=coffee, sha256="a" * 64, probabilities=[0.2, 0.8]),
        FieldAnswer(version=active, job=other, sha256="b" * 64, probabilities=[0.3, 0.7]),
        FieldAnswer(version=candidate, job=coffee, sha256="a" * 64, probabilities=[0.9, 0.1]),
        FieldAnswer(version=candidate, job=other, sha256="b" * 64, probabilities=[0.4, 0.6]),
    ])

    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[candidate.pk])).content.decode()
    assert "coffee v2 against the active coffee v1" in page
    assert "Test split: it would break 1" in page and "Field set: it would fix 1" in page
    assert "Test split: it would fix" not in page and "Field set: it would break" not in page

    compare = staff_client.get(reverse("admin:classifier_modelversion_compare") + f"?v={active.pk}&v={candidate.pk}")
    assert "Field set: it would fix 1" in compare.content.decode()  # the same report beside the side-by-side

    activate = reverse("admin:classifier_modelversion_activate", args=[candidate.pk])
    asked = staff_client.post(activate)
    assert asked.status_code == 200 and "Activate coffee v2 anyway" in asked.content.decode()
    assert "test split 50.0% against 100.0% on 2 photos" in asked.content.decode()
    candidate.refresh_from_db()
    assert not candidate.is_active and not Activation.objects.exists()

    listed = staff_client.post(reverse("admin:classifier_modelversion_changelist"),
                               {"action": "activate_selected", "_selected_action": [candidate.pk]}, follow=True)
    assert any("Activate it from its page to confirm" in message for message in messages_of(listed))

    confirmed = staff_client.post(activate, {"confirmed_worse": "1"})
    assert confirmed.status_code == 302
    candidate.refresh_from_db()
    assert candidate.is_active
    activation = Activation.objects.get()
    assert (activation.version, activation.previous, activation.confirmed_worse) == (candidate, active, True)
    assert activation.user == confirmed.wsgi_request.user

    # a rollback is judged the same way: v1 is the worse of the two on the field set
    rollback = reverse("admin:classifier_modelversion_activate", args=[active.pk])
    assert "field set 50.0% against 100.0% on 2 photos" in staff_client.post(rollback).content.decode()
    assert staff_client.post(rollback, {"confirmed_worse": "1"}).status_code == 302
    assert Activation.objects.filter(version=active, previous=candidate, confirmed_worse=True).exists()


def test_a_photo_sent_twice_is_compared_once_as_its_newest_upload(dataset, photos):
    test = list(dataset.images.filter(split="test").order_by("sha256").select_related("label"))
    right = [0.9 if image.label.name == "not_coffee" else 0.1 for image in test]
    active, candidate = version_with(dataset, 1, right, active=True), version_with(dataset, 2, right)
    first, again, last = (field_job(dataset, active, "coffee") for _ in range(3))  # the same bytes, sent thrice
    FieldAnswer.objects.bulk_create([  # the candidate fixes the photo, however many times it was sent
        FieldAnswer(version=version, job=job, sha256="a" * 64, probabilities=probabilities)
        for version, probabilities in ((active, [0.2, 0.8]), (candidate, [0.9, 0.1])) for job in (first, again)
    ] + [FieldAnswer(version=active, job=last, sha256="a" * 64, probabilities=[0.2, 0.8])])  # not by the candidate
    field = candidate_report(version=candidate).sets[1]
    assert field.photos == 1 and [item["job_id"] for item in field.fixed] == [str(again.pk)]


# ----- retraining: suggested, scheduled, judged


def learnt_photos(dataset, count):
    """`count` more labelled photos that came from the review queue."""
    label, start = dataset.labels.get(name="coffee"), dataset.images.count()
    for i in range(start, start + count):
        dataset_image_create(dataset=dataset, data=jpeg("coffee", size=(120 + i, 90)), name=f"learnt{i}.jpg",
                             label=label, source=DatasetImage.Source.REVIEW)


def test_a_retrain_is_suggested_after_enough_learnt_photos_and_scheduled_daily_on_opt_in(staff_client, dataset,
                                                                                       photos, settings):
    from django_q.models import Schedule

    settings.RETRAIN_SUGGESTED_AFTER = 3
    version_with(dataset, 1, [0.1, 0.9], active=True)
    learnt_photos(dataset, 2)
    assert "workspace-suggestion" not in staff_client.get(HOME).content.decode()
    learnt_photos(dataset, 1)
    home = staff_client.get(HOME).content.decode()
    assert "has 3 new photos from feedback and review" in home
    assert reverse("admin:classifier_modelversion_train", args=[dataset.pk]) in home

    schedule_url = reverse("admin:classifier_modelversion_retrain_schedule", args=[dataset.pk])
    dataset_page = staff_client.get(reverse("admin:dataset_dataset_change", args=[dataset.pk])).content.decode()
    assert "a retrain is suggested" in dataset_page and "Retrained only when someone asks." in dataset_page
    saved = staff_client.post(schedule_url, {"enabled": "1", "activate_when_better": "1"}, follow=True)
    assert any("retrained every day" in message for message in messages_of(saved))
    schedule = Schedule.objects.get(func="classifier.tasks.retrain_if_due")
    assert (schedule.cluster, schedule.schedule_type, schedule.args) == ("training", Schedule.DAILY, repr(dataset.pk))
    assert "beats the active one" in saved.content.decode()

    version = dataset_retrain_if_due(dataset=dataset, activate_when_better=True)  # what the schedule's task runs
    assert version.number == 2 and version.activate_when_better and version.status == ModelVersion.Status.QUEUED
    assert dataset_retrain_if_due(dataset=dataset, activate_when_better=True) is None  # one is queued already

    staff_client.post(schedule_url, {})
    assert not Schedule.objects.filter(func="classifier.tasks.retrain_if_due").exists()


def test_a_scheduled_candidate_is_activated_only_when_it_beats_the_active_version_on_both_sets(dataset, photos):
    test = list(dataset.images.filter(split="test").order_by("sha256").select_related("label"))
    right = [0.9 if image.label.name == "not_coffee" else 0.1 for image in test]
    active = version_with(dataset, 1, [1 - right[0], *right[1:]], active=True)  # wrong on one test photo
    coffee = field_job(dataset, active, "coffee")
    answers = {"active": [0.2, 0.8], "better": [0.9, 0.1], "same": [0.2, 0.8]}
    FieldAnswer.objects.create(version=active, job=coffee, sha256="a" * 64, probabilities=answers["active"])

    # better on the test split, not on the field set: it waits
    tie = version_with(dataset, 2, right)
    FieldAnswer.objects.create(version=tie, job=coffee, sha256="a" * 64, probabilities=answers["same"])
    assert not candidate_activate_if_better(version=tie)
    # better on both: it answers from now on, and the record says nobody clicked
    better = version_with(dataset, 3, right)
    FieldAnswer.objects.create(version=better, job=coffee, sha256="a" * 64, probabilities=answers["better"])
    assert candidate_activate_if_better(version=better)
    better.refresh_from_db()
    tie.refresh_from_db()
    assert better.is_active and not tie.is_active
    activation = Activation.objects.get(version=better)
    assert activation.user is None and activation.previous == active and not activation.confirmed_worse


def test_shadow_disagreements_wait_in_the_review_queue_and_the_api_lists_field_accuracy(staff_client, dataset,
                                                                                      photos):
    version = version_with(dataset, 1, [0.1, 0.9], active=True)
    confident = {"dataset": dataset, "image": "predictions/x.jpg", "image_format": "JPEG", "status": "done",
                 "label": "coffee", "confidence": 0.99, "decision": "answered", "model_version": version}
    disputed = PredictionJob.objects.create(**confident, shadow_label="not_coffee")
    PredictionJob.objects.create(**confident, shadow_label="coffee")
    PredictionJob.objects.create(**confident)  # no shadow then
    assert review_waiting_counts(dataset=dataset) == {"wrong": 0, "unsure": 0, "disagreement": 1}
    assert [job.pk for job in review_queue(dataset=dataset)] == [disputed.pk]

    scoring = FieldScoring.objects.create(dataset=dataset, status="done")
    FieldScore.objects.create(version=version, scoring=scoring, photos=4, accuracy=0.75)
    [listed] = staff_client.get(f"/api/v1/models?dataset={dataset.slug}").json()["versions"]
    assert (listed["number"], listed["field_accuracy"], listed["is_active"]) == (1, 0.75, True)
