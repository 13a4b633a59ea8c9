"""The Celery app: Redis as broker, late acknowledgement, one task reserved at a time per process.

    celery -A celery_batch.app worker --pool prefork --concurrency 4

* ``task_acks_late`` with ``task_reject_on_worker_lost``: a task is acknowledged when it
  returns, so the task of a worker that dies (killed, out of memory, the machine gone) goes
  back to the queue for another worker instead of being lost. With Redis as broker, a task
  whose whole worker vanished comes back after ``visibility_timeout`` (it must be longer
  than any task runs: a generation is polled for up to the client's ``task_timeout``).
  A task may therefore run twice; the store makes that harmless: the second run finds the
  item done, or claimed (it waits), or resumes its task.
* ``worker_prefetch_multiplier=1``: a worker process holds one task at a time, so a slow
  item never keeps others waiting behind it in a busy process.
"""

from __future__ import annotations

from celery import Celery

from .settings import settings

SETTINGS = settings()

app = Celery("celery_batch", broker=SETTINGS.broker, include=["celery_batch.tasks"])
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,  # the outcomes live in the store, where the enqueue command reads them
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        "visibility_timeout": SETTINGS.visibility,
        # look for tasks of dead workers every few seconds, not every 100 (kombu's default sweep)
        "unacked_restore_interval": max(1, min(10, int(SETTINGS.visibility / 4))),
        "unacked_restore_throttle": 1,
    },
)
