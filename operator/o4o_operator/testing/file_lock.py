"""One exclusive ``flock`` for a block: how the test peers keep two processes (two of ``make test``'s workers, a
world and its shims) from one shared thing at once. The lock goes when the process dies.

Owns: :func:`exclusive`. Must not: hold a lock past its block, or be used by scripts that run without this
package (``testbin.py``, the shims copied onto sandbox hosts keep their own few lines).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (made, with its directory, if missing) for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
