"""What a stage action hands back to the worker: the worker alone holds and writes the status.

Owns: the three steps an action yields, in order: :class:`Keep` (status changes learnt on the way,
kept even if the stage then fails), :class:`Checkpoint` (changes that must be written before the
action goes on, e.g. "create pending" before a server is created) and, last, :class:`Outcome`
(the message of success and the final changes). Must not write anything itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from o4o_operator.runner.instance import InstanceContext

Changes = Mapping[str, Any]
"""Status field (snake_case; dotted for one field of a nested part) -> new value."""


@dataclasses.dataclass(frozen=True)
class Keep:
    changes: Changes


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    changes: Changes


@dataclasses.dataclass(frozen=True)
class Outcome:
    message: str
    changes: Changes = dataclasses.field(default_factory=dict)


StageStep = Keep | Checkpoint | Outcome
StageAction = Callable[["InstanceContext"], AsyncGenerator[StageStep]]
