"""Settings for the peers bench/serve.py compares against: the project's, with the peers' URLs."""

from coffeeclassifier.settings import *

ROOT_URLCONF = "bench.peer_urls"
