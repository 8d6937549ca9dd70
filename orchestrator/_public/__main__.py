"""``python -m clicloop`` runs the clicloop command line (with its exit status, as the console script does)."""

import sys

from clicloop.orchestrator.cli.main import main

sys.exit(main())
