"""``python -m o4o_operator.testing.operator_main run ...``: the shipped CLI for test worlds.

Owns: the one difference between the operator that tests run and the one that ships: it honours
sandbox hosts' ``O4O_ROOT`` (``o4o_operator.handlers.HONOUR_SANDBOX_ROOT``), set here in Python rather
than read from any setting or environment variable, so no deployment of the shipped operator can turn
it on (and the built wheel leaves this package out). Must not change anything else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # As o4o_operator.cli does before Kopf is imported: Kopf would import the kubernetes client.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from o4o_operator import cli, handlers

    handlers.HONOUR_SANDBOX_ROOT = True
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
