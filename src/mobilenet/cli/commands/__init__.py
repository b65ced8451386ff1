"""One module per command of ``mobilenet``, named after it: its ``HELP`` and ``DESCRIPTION``, ``add_arguments`` and
``run``. Nothing else lives here: the modules ``list`` and ``eval`` would shadow those builtins in any namespace
that imports them by name, so :mod:`mobilenet.cli` imports them by path."""
