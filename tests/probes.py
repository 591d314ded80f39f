"""Tasks the tests send to a real queue worker to look inside it."""

import sys


def training_modules_loaded() -> list[str]:
    """The training libraries this worker process has imported."""
    return [name for name in ("tensorflow", "keras") if name in sys.modules]
