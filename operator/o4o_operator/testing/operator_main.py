"""``python -m o4o_operator.testing.operator_main run ...``: the shipped CLI for test worlds.

Owns: the one difference between the operator that tests run and the one that ships: it honours
sandbox hosts' ``O4O_ROOT`` (``o4o_operator.handlers.HONOUR_SANDBOX_ROOT``), set here in Python rather
than read from any setting or environment variable, so no deployment of the shipped operator can turn
it on (and the built wheel leaves this package out); and, when the test world sets ``O4O_TEST_CLOCK_FILE``, the
runtime's clock: the real time plus the seconds that file holds (``handlers.TEST_CLOCK``), so that a test can move
time past a backup schedule's window without waiting for it. Must not change anything else.
"""

from __future__ import annotations

import datetime
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

CLOCK_FILE_VARIABLE = "O4O_TEST_CLOCK_FILE"


def offset_clock(path: Path) -> Callable[[], datetime.datetime]:
    """Now, plus the seconds ``path`` holds (none, or no file: zero)."""
    def clock() -> datetime.datetime:
        try:
            offset = float(path.read_text().strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset)
    return clock


def main(argv: Sequence[str] | None = None) -> int:
    # As o4o_operator.cli does before Kopf is imported: Kopf would import the kubernetes client.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from o4o_operator import cli, handlers

    handlers.HONOUR_SANDBOX_ROOT = True
    clock_file = os.environ.get(CLOCK_FILE_VARIABLE)
    if clock_file:
        handlers.TEST_CLOCK = offset_clock(Path(clock_file))
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
