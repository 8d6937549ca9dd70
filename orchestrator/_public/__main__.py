"""``python -m clicloop`` runs the clicloop command line."""

from clicloop.orchestrator.cli.main import main

main()
