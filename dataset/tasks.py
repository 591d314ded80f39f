"""Queue entry points of the dataset: they take primary keys and call one service."""

from dataset import imports
from dataset.models import ImportRun


def import_run(run_id: int) -> None:
    imports.import_run_execute(run=ImportRun.objects.get(pk=run_id))
