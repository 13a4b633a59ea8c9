"""Batches on Celery with a shared Redis store: see README.md beside this file."""
