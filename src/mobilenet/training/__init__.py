"""Training for any task: config and recipes, the task interface, the loop, checkpoints, run log, QAT.

It knows tasks only through :class:`~mobilenet.training.task.Task`, and never imports a task package,
``inference``, ``tools`` or the CLI.
"""
