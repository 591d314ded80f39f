"""The JSON API against its own OpenAPI schema, with Schemathesis generating the requests.

Every operation of /api/v1/openapi.json is called in-process through the WSGI app (the same
`coffeeclassifier.wsgi.application` gunicorn serves), with valid and invalid parameters and bodies,
multipart uploads included, and every answer goes through all of Schemathesis's checks (the command
line's `--checks all`): no 5xx, statuses, headers and bodies as the schema declares them, invalid
input refused, no key asked for that is not needed. The runs are derandomized and bounded, so the
same requests are sent every time.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test.utils import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks

from classifier.models import PredictionJob
from classifier.services.predictions import prediction_job_create
from coffeeclassifier.wsgi import application
from dataset.models import Dataset
from tests.conftest import active_version_row
from tests.photos import jpeg

load_all_checks()
ALL_CHECKS = CHECKS.get_all()  # the command line's `--checks all`
SCHEMA_PATH = "/api/v1/openapi.json"
UPLOAD = ("POST", "/api/v1/predictions")
SCHEMA_SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": list(HealthCheck),  # generation speed and data size are Schemathesis's business here
}


@pytest.fixture
def app_on_test_database(db, settings):
    """The WSGI app, answering from the test's transaction.

    Django closes "old" connections when a request starts and finishes; inside the test's
    transaction that would close the test's own connection, so, exactly as Django's test client
    does, that handler is disconnected while the app is called directly. The host Werkzeug's
    client sends is allowed.
    """
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, schemathesis.python.wsgi.HOST]
    settings.PREDICTION_LONG_POLL_MAX_SECONDS = 0.2  # a generated `wait` must not hold the run for 30 s
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield application
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def active_model(db, settings):
    """The default dataset with an active version, so uploads reach image validation instead of
    stopping at 503."""
    return active_version_row(Dataset.objects.create(name="Coffee or not", slug=settings.DEFAULT_DATASET_SLUG))


@pytest.fixture
def calls(capsys, request):
    """Counts (method, path, media type, status) of the requests sent; the upload operation must
    have been sent multipart uploads, some stored (202) and some refused (400)."""
    sent, started = Counter(), time.perf_counter()
    yield sent
    with capsys.disabled():
        print(f"\n{request.node.name}: {sum(sent.values())} requests in {time.perf_counter() - started:.1f} s")
        for key, count in sorted(sent.items()):
            print(f"  {count:5} × {' '.join(map(str, key))}")
    if any(key[:2] == UPLOAD for key in sent):
        multipart = {status for (method, path, media_type, status) in sent
                     if (method, path) == UPLOAD and media_type == "multipart/form-data"}
        assert {202, 400} <= multipart, sent


# Loaded from the app itself when the module is collected (Django is set up by then); the host
# Werkzeug's client sends is allowed for that one request whatever ALLOWED_HOSTS the environment sets.
# (`schemathesis.pytest.from_fixture` would load it inside the test instead, but with pytest 9.2 it
# fails: it sets `Function._nodeid`, which pytest 9.2 no longer has.)
with override_settings(ALLOWED_HOSTS=[schemathesis.python.wsgi.HOST]):
    schema = schemathesis.openapi.from_wsgi(SCHEMA_PATH, application)
schema.config.checks.update(included_check_names=["all"])
# A schema says a request is well formed; whether its file is a photo that decodes, or its label one
# of the dataset's, is the data's business: such requests are refused with 400 and a sentence.
schema.config.checks.positive_data_acceptance.expected_statuses = [
    *schema.config.checks.positive_data_acceptance.expected_statuses, "400"
]


@schema.parametrize()
@settings(max_examples=150, **SCHEMA_SETTINGS)
def test_every_operation_answers_as_its_schema_says(case, app_on_test_database, active_model, calls):
    """Each operation, with generated valid and invalid input (Schemathesis's examples, coverage and
    fuzzing phases): answers as the schema says."""
    response = case.call()
    calls[(case.method.upper(), case.path, case.media_type or "-", response.status_code)] += 1
    case.validate_response(response, checks=ALL_CHECKS)


def test_existing_jobs_answer_generated_reads_and_feedback_as_the_schema_says(app_on_test_database,
                                                                            active_model, capsys):
    """Generated job ids almost never name a job, so the reads and feedback of real jobs (one
    waiting, one answered) get their own run, with generated `wait` values and feedback bodies,
    valid and invalid."""
    waiting = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("rocket", size=(64, 48)))
    answered = prediction_job_create(dataset_slug=active_model.dataset.slug, data=jpeg("chelsea", size=(64, 48)))
    PredictionJob.objects.filter(pk=answered.pk).update(
        status=PredictionJob.Status.DONE, label="coffee", confidence=0.9, decision="unsure",
        probabilities={"coffee": 0.9, "not_coffee": 0.1}, heatmap=[[0.0, 1.0]], model_version=active_model,
    )
    operations = [
        schema["/api/v1/predictions/{job_id}"]["GET"], schema["/api/v1/predictions/{job_id}/feedback"]["POST"],
    ]
    statuses = Counter()

    @settings(max_examples=40, **SCHEMA_SETTINGS)
    @given(data=st.data())
    def check(data):
        operation = data.draw(st.sampled_from(operations))
        job = data.draw(st.sampled_from([waiting, answered]))
        mode = data.draw(st.sampled_from([GenerationMode.POSITIVE, GenerationMode.NEGATIVE]))
        case = data.draw(operation.as_strategy(mode, path_parameters={"job_id": str(job.pk)}))
        response = case.call()
        statuses[(case.method.upper(), case.operation.path, response.status_code)] += 1
        case.validate_response(response, checks=ALL_CHECKS)

    started = time.perf_counter()
    check()
    with capsys.disabled():
        print(f"\nexisting jobs: {sum(statuses.values())} requests in {time.perf_counter() - started:.1f} s")
        for key, count in sorted(statuses.items()):
            print(f"  {count:5} × {' '.join(map(str, key))}")
    assert statuses, "nothing was sent"
    assert any(status == 200 for (_, _, status) in statuses), statuses
