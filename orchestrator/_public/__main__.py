"""``python -m orchestrator`` runs the clicloop command line."""

from orchestrator.cli import main

main()
