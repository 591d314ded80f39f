from django.apps import AppConfig
from django.db.models.signals import pre_delete


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self):
        from classifier.receivers import dataset_pre_delete

        pre_delete.connect(dataset_pre_delete, sender="dataset.Dataset", dispatch_uid="classifier-dataset-pre-delete")
