"""``python -m o4o_operator`` is ``o4o-operator``."""

import sys

from o4o_operator.cli import main

sys.exit(main())
