"""Queue entry points: they take primary keys and call one service."""

from classifier import services
from classifier.models import ModelVersion


def train_model_version(version_id: int) -> None:
    services.model_version_train(version=ModelVersion.objects.get(pk=version_id))
