"""The task runtime: ``rl_task``, dispatch, ``TaskContext``, the Celery app and the pipeline.

Submodules are imported on demand: ``relier.tasks.decorator`` (``rl_task``),
``relier.tasks.context`` (``TaskContext``, ``task_context``), ``relier.tasks.app`` (the
ready-made Celery app), ``relier.tasks.install`` (``install``).
"""
