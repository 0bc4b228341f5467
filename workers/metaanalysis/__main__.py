"""``python -m workers.metaanalysis``: the command-line tool (see :mod:`workers.metaanalysis.cli`)."""

from .cli import main

raise SystemExit(main())
