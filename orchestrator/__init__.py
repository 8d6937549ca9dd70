"""The orchestrator: the loop and what it stands on.

At the top: the contracts (``hookspecs``, ``types``, ``errors``), the plugin manager
(``plugins``), ``config``, ``data``, ``seeding`` and the loop itself (``loop``, ``loop_setup``,
``stopping``, ``progress``). Around it, one room per concern:

- ``training/``: model factories and pseudo-labels (the training side of a round);
- ``crowd/``: aggregation, redundancy, gold questions and relabeling (label quality);
- ``fairwork/``: the wage floor, reward pricing and the policies applied before a task leaves;
- ``ledger/``: the system of record for every answer, second and cent;
- ``reporting/``: the report, the labor card and the forecast, read from the ledger;
- ``dashboard/``: the cost-of-human-labor views (live and as one HTML file);
- ``postdeploy/``: reviewing a deployed model's predictions with people;
- ``cli/``: the ``clicloop`` command line, a thin edge over all of the above.

The public API is ``clicloop`` itself (``from clicloop import Loop, config_from_dict``).
"""
