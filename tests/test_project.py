"""The project as a whole: production settings, start-up imports, the demo set-up command."""

import ast
import io
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from classifier.models import ModelVersion
from dataset.models import Dataset
from tests.conftest import active_version_row, fresh_python

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
        timeout=120, check=False,
    )


def test_deploy_check_is_clean_in_production_settings():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="0", SECRET_KEY="x" * 20 + "-production-secret-key-for-the-check-0123456789", ALLOWED_HOSTS="example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_without_a_secret_key_says_what_to_set():
    result = manage("check", DEBUG="0", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG=0" in result.stderr


def test_production_refuses_a_development_secret_key():
    result = manage("check", DEBUG="0", SECRET_KEY="django-insecure-" + "x" * 50, ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY starts with “django-insecure-”: it is a development key" in result.stderr


def test_a_malformed_setting_names_itself():
    result = manage("check", MAX_UPLOAD_BYTES="twenty megabytes")
    assert result.returncode != 0
    assert "MAX_UPLOAD_BYTES must be a whole number, not 'twenty megabytes'." in result.stderr


def test_django_start_up_imports_no_tensorflow():
    """The queue cluster forks its workers: TensorFlow in the parent before a fork can deadlock."""
    code = (
        "import django, sys; django.setup();"
        "from django.urls import resolve; resolve('/admin/');"
        "import dataset.admin, dataset.services, classifier.admin, classifier.services.training, classifier.services.predictions, classifier.services.maintenance, classifier.tasks;"
        "from django.core.management import load_command_class;"
        "[load_command_class(app, name) for app, name in (('classifier', 'train'), ('classifier', 'predict'), ('classifier', 'evaluate'))];"
        "loaded = [m for m in ('tensorflow', 'keras', 'ai_edge_litert') if m in sys.modules];"
        "print(loaded); sys.exit(1 if loaded else 0)"
    )
    fresh_python(code)  # fails with the list of what was loaded


class InlineCode(HTMLParser):
    """Collects what a Content-Security-Policy without 'unsafe-inline' would refuse to run."""

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and "src" not in attributes and attributes.get("type") != "application/json":
            self.found.append("an inline <script>")
        if tag == "style":
            self.found.append("a <style> element")
        self.found += [f"{tag}'s {name} attribute" for name in attributes if name == "style" or name.startswith("on")]


@pytest.mark.django_db
def test_every_page_sends_a_content_security_policy_and_runs_only_the_sites_own_files(staff_client):
    dataset = Dataset.objects.create(name="Coffee or not", slug="coffee")
    version = active_version_row(dataset)
    training = ModelVersion.objects.create(dataset=dataset, number=2, backbone="mobilenet_025",
                                           status=ModelVersion.Status.TRAINING, artifact_dir="models/coffee/2")
    pages = ["/", "/api/v1/docs", "/admin/", f"/admin/classifier/modelversion/{version.pk}/change/",
             f"/admin/classifier/modelversion/{training.pk}/change/", f"/admin/dataset/dataset/{dataset.pk}/change/"]
    for page in pages:
        response = staff_client.get(page)
        assert response.status_code == 200, page
        assert response["Content-Security-Policy"].startswith("default-src 'self';"), page
        parser = InlineCode()
        parser.feed(response.content.decode())
        assert not parser.found, (page, parser.found)
        # scripts and styles come from this site
        assert "cdn." not in response.content.decode(), page
    assert "Content-Security-Policy" in staff_client.get("/api/v1/models/active")


@pytest.mark.django_db
def test_demo_setup_without_photos_leaves_an_empty_dataset_and_says_how_to_fill_it(settings, tmp_path):
    settings.DEMO_DATA_DIR = tmp_path / "missing"
    settings.VAR_DIR = tmp_path / "var"
    out = io.StringIO()
    call_command("demo_setup", "--no-progress", stdout=out)
    output = out.getvalue()
    assert f"No demo photos at {tmp_path / 'missing'}" in output
    assert "import_images FOLDER --dataset coffee" in output
    assert Dataset.objects.get(slug="coffee").images.count() == 0
    password = (tmp_path / "var" / "admin-password.txt").read_text().strip()
    assert f"with the password {password}" in output
    assert authenticate(username="admin", password=password).is_superuser

    again = io.StringIO()
    call_command("demo_setup", "--no-progress", stdout=again)
    assert f"with the password {password}" in again.getvalue()
    assert authenticate(username="admin", password=password) is not None


@pytest.mark.django_db
def test_demo_setup_imports_the_demo_photos_and_trains_version_1(settings, tmp_path, demo_photos, keras_home):
    settings.VAR_DIR = tmp_path / "var"
    out = io.StringIO()
    call_command("demo_setup", "--no-progress", stdout=out)
    dataset = Dataset.objects.get(slug="coffee")
    assert set(dataset.labels.values_list("name", flat=True)) == {"coffee", "not_coffee"}
    assert dataset.images.count() == sum(len(paths) for paths in demo_photos.values())
    version = ModelVersion.objects.get(dataset=dataset)
    assert (version.number, version.status, version.is_active) == (1, ModelVersion.Status.READY, True)
    assert "coffee v1 is now active." in out.getvalue()
    # the folder's KINDS.tsv gives the photos their groups, with no option
    assert dataset.images.filter(group="").count() == 0 and dataset.images.filter(group="matcha").exists()

    call_command("demo_setup", "--no-progress", stdout=io.StringIO())
    assert ModelVersion.objects.count() == 1  # nothing is trained twice


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_imports_run_one_way_dataset_below_classifier_and_settings_import_no_app():
    dataset_imports = {
        str(path.relative_to(ROOT)): name
        for path in (ROOT / "dataset").rglob("*.py") for name in imported_modules(path)
        if name.split(".")[0] == "classifier"
    }
    assert not dataset_imports, dataset_imports
    settings_imports = {name for name in imported_modules(ROOT / "coffeeclassifier" / "settings.py")
                        if name.split(".")[0] in ("dataset", "classifier")}
    assert not settings_imports, settings_imports
    ml_imports = {
        name for path in (ROOT / "classifier" / "ml").rglob("*.py") for name in imported_modules(path)
        if name.split(".")[0] in ("django", "dataset") or name.startswith("classifier.") and ".ml" not in name
    }
    assert not ml_imports, ml_imports
