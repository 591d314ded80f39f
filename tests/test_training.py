"""Model versions end to end: commands, immutability, activation, rollback, failures, admin + queue."""

import hashlib
import io
import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.urls import reverse

from classifier.models import ModelVersion
from classifier.selectors import worst_first
from classifier.services.training import model_version_activate, model_version_request, model_version_train
from dataset.models import DatasetImage
from tests.conftest import wait_for

BACKBONE = "mobilenet_025"  # the smallest real backbone keeps the suite fast


def train(dataset, *args: str) -> str:
    out = io.StringIO()
    call_command("train", "--dataset", dataset.slug, "--backbone", BACKBONE, "--no-progress", *args, stdout=out)
    return out.getvalue()


def fingerprint(version: ModelVersion, media_root: Path) -> dict:
    directory = media_root / version.artifact_dir
    files = {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(directory.iterdir())}
    row = ModelVersion.objects.filter(pk=version.pk).values(
        "number", "status", "metrics", "threshold", "labels", "training_settings", "finished_at"
    )[0]
    return {"files": files, "row": row}


@pytest.mark.django_db
def test_train_command_retrain_activate_and_roll_back(small_dataset, keras_home, media_root):
    output = train(small_dataset, "--activate")
    v1 = ModelVersion.objects.get(dataset=small_dataset, number=1)
    assert v1.status == ModelVersion.Status.READY and v1.is_active
    assert "coffee v1: mobilenet_025" in output and "coffee v1 is now active." in output
    assert f"test        8 {v1.metrics['test']['accuracy']:9.2%}" in output
    assert v1.metrics["test"]["accuracy"] >= 0.75 and v1.metrics["parity_max_abs_diff"] <= 1e-3
    assert sorted(p.name for p in (media_root / v1.artifact_dir).iterdir()) == [
        "metadata.json", "model.keras", "model.tflite"
    ]
    before = fingerprint(v1, media_root)

    output = train(small_dataset)
    v2 = ModelVersion.objects.get(dataset=small_dataset, number=2)
    assert v2.status == ModelVersion.Status.READY and not v2.is_active
    assert "Activate it in the admin, or train with --activate." in output
    assert v2.artifact_dir != v1.artifact_dir
    assert fingerprint(v1, media_root) == before
    v1.refresh_from_db()
    assert v1.is_active

    model_version_activate(version=v2, confirmed_worse=True)
    assert list(ModelVersion.objects.filter(is_active=True)) == [v2]
    model_version_activate(version=v1, confirmed_worse=True)  # roll back
    assert list(ModelVersion.objects.filter(is_active=True)) == [v1]
    assert fingerprint(v1, media_root) == before

    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.filter(pk=v2.pk).update(is_active=True)


@pytest.mark.django_db
def test_train_output_and_the_version_page_report_labels_and_the_worst_groups_first(
    small_dataset, keras_home, staff_client
):
    juice = small_dataset.images.filter(group="juice")
    assert juice.exists()  # the fixture's photos carry KINDS.tsv's groups
    output = train(small_dataset)
    version = ModelVersion.objects.get(dataset=small_dataset)
    for split in ("val", "test"):
        groups = dict(worst_first(version.metrics[split]["per_group"]))  # jsonb keeps no key order
        accuracies = [scores["accuracy"] for scores in groups.values()]
        assert accuracies == sorted(accuracies) and set(groups) <= {"latte_art", "imagenet_other", "cat", "juice"}
        lines = output.splitlines()
        heading = next(i for i, line in enumerate(lines) if line.startswith("group, worst first") and f"({split})" in line)
        table = lines[heading + 1:]
        worst, scores = next(iter(groups.items()))
        assert table[0] == f"{worst[:20]:20} {scores['accuracy']:9.2%} {scores['count']:7d}"
        assert f"precision  recall     F1 images  ({split})" in output  # per label, val and test
        answered = version.metrics[split]["answered_accuracy"]
        assert f"{version.metrics[split]['coverage']:.1%}" in output.split(f"\n{split} ")[1].splitlines()[0]
        assert answered is None or f"{answered:.2%}" in output.split(f"\n{split} ")[1].splitlines()[0]
    calibration = version.metrics["calibration"]
    assert f"calibration error (val): {calibration['ece_val_before']:.2%} before" in output

    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    table = page[page.index('<table class="groups-test">'):]
    rows = table[: table.index("</table>")].split("<tr>")[2:]
    assert [row.split("<td>")[1].split("</td>")[0] for row in rows] == [group for group, _ in worst_first(version.metrics["test"]["per_group"])]
    assert "Per group (val), worst first" in page and "Calibration error: validation" in page


@pytest.mark.django_db
def test_a_failed_training_is_recorded_and_leaves_the_active_version(small_dataset, keras_home, media_root):
    train(small_dataset, "--activate")
    active = ModelVersion.objects.get(is_active=True)
    version = model_version_request(dataset=small_dataset, backbone=BACKBONE, enqueue=False)
    # the data changes between the request and the run: no validation photo is left
    small_dataset.images.filter(split="val").update(excluded=True)
    version = model_version_train(version=version)
    assert version.status == ModelVersion.Status.FAILED
    assert "validation split is empty" in version.error
    assert not (media_root / version.artifact_dir).exists()
    assert ModelVersion.objects.get(is_active=True) == active
    with pytest.raises(ValidationError, match="not ready"):
        model_version_activate(version=version, confirmed_worse=True)
    # a failed version is never retried by a late duplicate of its task
    assert model_version_train(version=version).status == ModelVersion.Status.FAILED


@pytest.mark.django_db
def test_training_refuses_data_it_cannot_learn_from(dataset, demo_photos):
    from tests.conftest import import_photos

    import_photos(dataset, {"coffee": demo_photos["coffee"]}, {"train": 3, "val": 1})
    with pytest.raises(CommandError, match="at least 2 labels"):
        train(dataset)
    assert not ModelVersion.objects.exists()
    with pytest.raises(CommandError, match="no dataset “nothing”"):
        call_command("train", "--dataset", "nothing")


@pytest.mark.django_db
def test_predict_command_answers_per_file_with_the_active_or_given_version(small_dataset, keras_home, tmp_path,
                                                                          media_root):
    train(small_dataset, "--activate")
    train(small_dataset)
    for number, unsure_below in ((1, 0.0), (2, 1.01)):  # version 1 trusts every answer, version 2 none
        metadata = media_root / ModelVersion.objects.get(number=number).artifact_dir / "metadata.json"
        metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "unsure_below": unsure_below}))
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [image.file for image in DatasetImage.objects.filter(split="test")[:3]]
    for file in photos:
        (folder / Path(file.name).name).write_bytes(file.open("rb").read())
    (folder / "notes.txt").write_text("skipped")
    out = io.StringIO()
    call_command("predict", str(folder), "--json", stdout=out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(records) == 3
    assert {record["version"] for record in records} == {1}
    for record in records:
        assert record["label"] in ("coffee", "not_coffee")
        assert record["confidence"] == max(record["probabilities"].values())
        assert record["decision"] == "answered"
        assert record["preprocess_ms"] > 0 and record["inference_ms"] > 0
    out = io.StringIO()
    call_command("predict", str(folder), "--version", "2", "--json", stdout=out)
    assert {(json.loads(line)["version"], json.loads(line)["decision"]) for line in out.getvalue().splitlines()} \
        == {(2, "unsure")}
    out = io.StringIO()
    call_command("predict", str(folder), "--version", "2", stdout=out)
    assert out.getvalue().count(", not sure, version 2)") == 3

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("predict", str(broken), stdout=out)
    assert "is not an image" in out.getvalue()


@pytest.mark.django_db
def test_version_pages_need_staff(client, small_dataset):
    version = model_version_request(dataset=small_dataset, enqueue=False)
    for url in (
        reverse("admin:classifier_modelversion_change", args=[version.pk]),
        reverse("admin:classifier_modelversion_compare") + f"?a={version.pk}&b={version.pk}",
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    response = client.post(reverse("admin:classifier_modelversion_activate", args=[version.pk]))
    assert response.status_code == 302 and not ModelVersion.objects.filter(is_active=True).exists()


def test_admin_retrain_runs_on_the_training_cluster(start_qcluster, staff_client, small_dataset, keras_home,
                                                    media_root):
    start_qcluster("training")
    response = staff_client.post(
        reverse("admin:dataset_dataset_changelist"),
        {"action": "retrain", "_selected_action": [small_dataset.pk]},
        follow=True,
    )
    assert "is queued; its page shows the progress." in response.content.decode()
    version = ModelVersion.objects.get(dataset=small_dataset)
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    assert 'class="training-progress" data-url=' in page  # queued or training: the page follows the progress

    def finished():
        version.refresh_from_db()
        return version.status in (ModelVersion.Status.READY, ModelVersion.Status.FAILED)

    wait_for(finished, timeout=180, message="the training cluster to train the version")
    assert version.status == ModelVersion.Status.READY, version.error
    # the cluster's log says so (its line follows the row's update, so it may come a moment later)
    log_file = media_root.parent / "qcluster-0.log"
    wait_for(lambda: f"Version {version} is ready" in log_file.read_text(), timeout=10, message="the log line")
    log = log_file.read_text()
    assert "stage=embeddings" in log
    assert "absl::InitializeLog" not in log and "oneDNN" not in log  # TensorFlow's start-up noise is not
    page = staff_client.get(reverse("admin:classifier_modelversion_change", args=[version.pk])).content.decode()
    assert "Confusion matrix (test)" in page and "Activate this version" in page
    assert 'class="training-progress"' not in page

    response = staff_client.post(reverse("admin:classifier_modelversion_activate", args=[version.pk]), follow=True)
    assert "now answers predictions" in response.content.decode()
    version.refresh_from_db()
    assert version.is_active

    response = staff_client.post(
        reverse("admin:dataset_dataset_changelist"),
        {"action": "retrain", "_selected_action": [small_dataset.pk]},
        follow=True,
    )
    second = ModelVersion.objects.get(dataset=small_dataset, number=2)
    wait_for(lambda: ModelVersion.objects.get(pk=second.pk).status == "ready", timeout=180, message="version 2")
    compare = staff_client.get(
        reverse("admin:classifier_modelversion_compare") + f"?a={version.pk}&b={second.pk}"
    ).content.decode()
    assert "test accuracy" in compare and "coffee v2" in compare


@pytest.mark.django_db
def test_comparison_shows_coverage_and_the_worst_group_of_each_version(small_dataset, staff_client):
    def version(number, coverage, worst):
        return ModelVersion.objects.create(
            dataset=small_dataset, number=number, backbone=BACKBONE, status=ModelVersion.Status.READY,
            artifact_dir=f"models/coffee/{number}",
            metrics={"test": {"count": 8, "accuracy": 0.9, "coverage": coverage, "answered_accuracy": 1.0,
                              "per_group": {worst: {"count": 4, "accuracy": 0.5}, "cat": {"count": 4, "accuracy": 1.0}}}},
        )

    first, second = version(1, 0.75, "matcha"), version(2, 0.875, "soup")
    page = staff_client.get(
        reverse("admin:classifier_modelversion_compare") + f"?a={first.pk}&b={second.pk}"
    ).content.decode()
    assert ('<tr><th scope="row">test answered (not unsure)</th><td class="number">75.0 %</td>'
            '<td class="number">87.5 %</td><td class="number difference better">+12.5 points') in page
    assert ('<tr><th scope="row">test worst group</th><td class="number">matcha: 50.0 % of 4</td>'
            '<td class="number">soup: 50.0 % of 4</td>') in page
