"""Redis connection settings shared by the queue broker and the job notifications."""

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def fail_fast_pool(url: str, **options):
    """Redis connections that fail fast while Redis is down (a job is kept and sent again later)
    instead of redis-py's default of ten retries over seconds; one retry covers a connection that
    a Redis restart dropped. The pool is safe to share across the cluster's forked workers."""
    return redis.ConnectionPool.from_url(url, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1), **options)
