"""``python -m export``: see :mod:`export.cli`."""

from export.cli import main

raise SystemExit(main())
