import pytest
from django.contrib.auth import get_user_model

from dataset.models import Dataset


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes its files under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def dataset(db):
    return Dataset.objects.create(name="Coffee or not", slug="coffee")


@pytest.fixture
def staff_client(client, db):
    user = get_user_model().objects.create_superuser("curator", "curator@example.com", "a-long-test-password")
    client.force_login(user)
    return client
