"""Training for any task: the config, the task interface, the loop, its hooks (quantization-aware training),
checkpoints and the run's record.

It knows tasks only through :class:`~mobilenet.training.task.Task`, and never imports a task package, the registry,
``inference``, ``tools`` or the CLI: the tasks, their settings and their recipes are found by
:mod:`mobilenet.tasks` in the registry.
"""
