"""``python -m o4o_dashboard``: the same as the ``o4o-dashboard`` console script."""

from o4o_dashboard.cli import main

raise SystemExit(main())
