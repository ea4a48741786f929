"""The fencing epoch of a leadership term: what makes one term newer than another, and its token on the hosts.

Owns: :class:`Epoch`, the ordered pair (revision, transitions) compared lexicographically, and its one-word
token (``<revision>.<transitions>``, what ``O4O_EPOCH`` carries and ``/var/lib/o4o/fence-epoch`` records).

- ``revision`` is the resourceVersion the apiserver gave the write that acquired the term (the create or the
  replace of the Lease). An etcd-backed apiserver's resourceVersion is etcd's revision: one counter for the
  whole cluster, raised by every write to any object, never reused. So a later acquisition has a higher
  revision, also when the Lease was deleted and made again in between (its ``leaseTransitions`` then restarts
  at 0): the apiserver decides it, no replica's clock does, and nothing has to survive but the cluster.
- ``transitions`` is the Lease's ``leaseTransitions`` after the acquisition, as before: readable beside
  ``kubectl get lease``, and the tie-break (two acquisitions never share a revision).
- An operator before this one sent ``leaseTransitions`` alone, a plain integer, and hosts may have recorded one:
  that reads as revision 0, older than any term of this operator (every revision is at least 1).

Purely computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import re

_TOKEN = re.compile(r"(?:(?P<revision>[0-9]{1,18})\.)?(?P<transitions>[0-9]{1,18})")
"""A token: ``<revision>.<transitions>``, or an older operator's plain ``<transitions>``. At most 18 digits
each, so the host fence's shell arithmetic (signed 64-bit) compares them exactly."""


@dataclasses.dataclass(frozen=True, order=True)
class Epoch:
    """One term's epoch; ``a < b``: ``a`` is older (compares ``revision``, then ``transitions``)."""

    revision: int
    """The resourceVersion of the write that acquired the term (0: an older operator's epoch)."""
    transitions: int
    """The Lease's ``leaseTransitions`` in that term."""

    def __post_init__(self) -> None:
        if not (0 <= self.revision < 10**18 and 0 <= self.transitions < 10**18):
            raise ValueError(f"an epoch's parts must be 0 to 18 digits long, got {self.revision}.{self.transitions}")

    @classmethod
    def of_acquisition(cls, resource_version: str | None, transitions: int) -> Epoch:
        """The epoch of a term acquired by a write that returned ``resource_version``; a clear error when the
        apiserver's resourceVersion is no decimal revision (a storage other than etcd's, which this cannot
        order)."""
        if resource_version is None or not resource_version.isdecimal() or int(resource_version) < 1:
            raise ValueError(f"the Lease's resourceVersion {resource_version!r} is not a revision number: the "
                             "fencing epoch needs an etcd-backed apiserver's resourceVersion")
        return cls(int(resource_version), transitions)

    @classmethod
    def from_token(cls, token: str) -> Epoch:
        """The epoch a host recorded: ``<revision>.<transitions>``, or an older operator's plain integer."""
        matched = _TOKEN.fullmatch(token.strip())
        if matched is None:
            raise ValueError(f"not a fencing epoch: {token!r}")
        return cls(int(matched["revision"] or 0), int(matched["transitions"]))

    @property
    def token(self) -> str:
        """The epoch as the hosts see it: one word, ``<revision>.<transitions>``."""
        return f"{self.revision}.{self.transitions}"

    def __str__(self) -> str:
        return self.token
