"""The Celery peer of bench/serve.py: what a Django developer builds for the same guarantees as
this project's queue, the plain way.

gunicorn (2 processes × 8 threads) runs `urls.predict`: it checks the upload with Pillow, stores
it as a PredictionJob row (the project's table, in the same database), sends `tasks.predict` with
the job's id through Redis and blocks on `AsyncResult.get`. A prefork Celery worker (2 processes,
each loading the active version's LiteRT model once) answers from the stored photo and writes
the answer to the row. Celery is no project dependency: this runs in its own venv,
.venv-celery (CELERY_PYTHON), built from bench/requirements-celery.txt.
"""
