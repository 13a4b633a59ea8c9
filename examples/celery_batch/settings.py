"""The example's settings, from the environment (the same in the workers and the enqueue command).

=================================  ==========================  =============================================
variable                           default                     meaning
=================================  ==========================  =============================================
``CELERY_BATCH_REDIS``             ``redis://localhost:6379/0``  the Redis holding the batches' state and the
                                                               shared poll budget
``CELERY_BATCH_BROKER``            ``CELERY_BATCH_REDIS``      Celery's broker
``CELERY_BATCH_POLLS_PER_SECOND``  ``50``                      polls per second for all workers together
                                                               (the API key's poll budget)
``CELERY_BATCH_LEASE``             ``30``                      seconds before a dead worker's item is taken
                                                               over
``CELERY_BATCH_VISIBILITY``        ``3600``                    seconds before the broker redelivers the task
                                                               of a worker that died (longer than any task)
``CELERY_BATCH_POLL_POLICY``       the client's                a JSON object of ``PollPolicy`` fields
``MAXAPI_KEY``, ``MAXAPI_BASE_URL``                            read by the client, as everywhere
=================================  ==========================  =============================================
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any


@dataclasses.dataclass(frozen=True)
class Settings:
    redis: str
    broker: str
    polls_per_second: float
    lease: float
    visibility: float
    poll_policy: dict[str, Any] | None


def settings() -> Settings:
    redis = os.environ.get("CELERY_BATCH_REDIS", "redis://localhost:6379/0")
    policy = os.environ.get("CELERY_BATCH_POLL_POLICY")
    return Settings(
        redis=redis,
        broker=os.environ.get("CELERY_BATCH_BROKER", redis),
        polls_per_second=float(os.environ.get("CELERY_BATCH_POLLS_PER_SECOND", "50")),
        lease=float(os.environ.get("CELERY_BATCH_LEASE", "30")),
        visibility=float(os.environ.get("CELERY_BATCH_VISIBILITY", "3600")),
        poll_policy=json.loads(policy) if policy else None,
    )
