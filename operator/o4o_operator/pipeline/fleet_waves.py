"""Which members of a DeploymentFleet belong to which wave, and the spec problems that stop a rollout.

Owns: assigning members to the ordered waves of ``spec.strategy.waves`` (selector, count or percentage;
members no wave takes go to an implicit last wave), and refusing what cannot be rolled, naming the field:
overlapping selectors, a selector that matches nothing, duplicate domains. Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import math

from o4o_operator.models_fleet import DeploymentFleetSpec, FleetMember, WaveSpec

REST_WAVE = "rest"


@dataclasses.dataclass(frozen=True)
class Wave:
    spec: WaveSpec
    members: tuple[FleetMember, ...]

    @property
    def name(self) -> str:
        return self.spec.name


class FleetSpecProblem(Exception):
    """The fleet's spec cannot be rolled: stalls the fleet, naming ``field``."""

    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = reason
        self.message = f"{field}: {message}"


def _check_domains(members: tuple[FleetMember, ...]) -> None:
    seen: dict[str, int] = {}
    for index, member in enumerate(members):
        if member.domain in seen:
            raise FleetSpecProblem(f"spec.members[{index}].domain", "DuplicateDomain",
                                   f"{member.domain} is also the domain of spec.members[{seen[member.domain]}]")
        seen[member.domain] = index


def assign_waves(spec: DeploymentFleetSpec) -> tuple[Wave, ...]:
    """The waves in order, each with its members (in the order of ``spec.members``).

    A member belongs to the first wave that takes it. Selector waves must not overlap each other and must
    match at least one member; count and percentage waves take from the members not yet taken (a percentage
    of all members, rounded up) and may come out empty.
    """
    _check_domains(spec.members)
    taken: dict[str, str] = {}
    selected_by: dict[str, int] = {}
    waves: list[Wave] = []
    total = len(spec.members)
    for index, wave in enumerate(spec.strategy.waves):
        field = f"spec.strategy.waves[{index}]"
        if wave.selector is not None:
            matching = [member for member in spec.members if wave.selector.matches(member.labels)]
            if not matching:
                raise FleetSpecProblem(f"{field}.selector", "WaveMatchesNothing",
                                       f"wave {wave.name} matches no member")
            for member in matching:
                if member.name in selected_by:
                    other = spec.strategy.waves[selected_by[member.name]].name
                    raise FleetSpecProblem(f"{field}.selector", "OverlappingSelectors",
                                           f"wave {wave.name} and wave {other} both select member {member.name}")
                selected_by[member.name] = index
            chosen = [member for member in matching if member.name not in taken]
        else:
            remaining = [member for member in spec.members if member.name not in taken]
            size = wave.count if wave.count is not None else math.ceil((wave.percentage or 0) * total / 100)
            chosen = remaining[:size]
        for member in chosen:
            taken[member.name] = wave.name
        waves.append(Wave(wave, tuple(chosen)))
    rest = tuple(member for member in spec.members if member.name not in taken)
    if rest:
        names = {wave.name for wave in spec.strategy.waves}
        name = REST_WAVE if REST_WAVE not in names else next(f"{REST_WAVE}-{n}" for n in range(1, 40)
                                                               if f"{REST_WAVE}-{n}" not in names)
        waves.append(Wave(WaveSpec(name=name, percentage=100), rest))
    return tuple(waves)
