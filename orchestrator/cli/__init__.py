"""The ``clicloop`` command line: thin edges that parse, call the core and format.

``main`` holds the app and the loop commands; ``ledger``, ``dashboard``, ``deploy`` and ``serve``
are the sub-command groups; ``quickstart`` is the bundled demo. Heavy imports happen inside the
commands, so ``clicloop --help`` stays fast.
"""
