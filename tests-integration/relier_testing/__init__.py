"""Helpers of Relier's integration tests: real Redis servers and real Celery worker processes."""
