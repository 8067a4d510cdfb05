"""The task runtime: rl_task, dispatch, TaskContext, the Celery app and worker pipeline."""
