"""Signal receivers: the classifier's data goes with the dataset it belongs to, however the dataset
is deleted (dataset imports nothing of the classifier, so it cannot ask)."""

from classifier.services.maintenance import datasets_classifier_data_delete


def dataset_pre_delete(sender, instance, **kwargs) -> None:
    """Before a dataset goes: its prediction jobs with their photos, its versions with their files."""
    datasets_classifier_data_delete(datasets=sender.objects.filter(pk=instance.pk))
