"""``python -m o4o_operator.testing.operator_main run ...``: the shipped CLI for test worlds.

Owns: the one difference between the operator that tests run and the one that ships: it honours
sandbox hosts' ``O4O_ROOT`` (``OperatorSettings.honour_sandbox_root``), injected through
``o4o_operator.handlers.SETTINGS_OVERRIDES`` rather than read from any environment variable, so
no deployment of the shipped operator can turn it on. Must not change anything else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # As o4o_operator.cli does before Kopf is imported: Kopf would import the kubernetes client.
    sys.modules.setdefault("kubernetes", None)  # type: ignore[arg-type]
    from o4o_operator import cli, handlers

    handlers.SETTINGS_OVERRIDES["honour_sandbox_root"] = True
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
