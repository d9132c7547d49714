"""``python -m mixlaws.cli ...`` runs the command-line interface."""

from ._main import main

raise SystemExit(main())
