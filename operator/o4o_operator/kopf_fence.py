"""Kopf's own writes behind the leader's term: the HTTP session Kopf talks to the apiserver through.

Kopf (1.45.2, the locked version) writes on its own for our handlers, through its own aiohttp session, which
our Kubernetes client's write guard never sees (read in ``kopf/_core/reactor/processing.py``,
``kopf/_core/actions/application.py``, ``kopf/_cogs/clients/patching.py``; each one seen on the real apiserver
in ``tests/kubeapi/test_kopf_fence.py``). Every one is a ``PATCH`` of a DeploymentInstance (or, for the fleet
timer, a DeploymentFleet):

- the finalizer ``deploy.o4o.io/teardown``: added (a JSON patch behind the resourceVersion) before the daemon or
  the timer starts, removed once the daemon stopped and the deletion handler succeeded;
- the annotations ``deploy.o4o.io/last-handled-configuration`` (the diff-base: the spec as last handled) and
  ``deploy.o4o.io/kopf-managed``, once the object is first handled;
- the deletion handler's progress, ``deploy.o4o.io/delete_instance`` (started, retries, delay), and its purge;
- ``deploy.o4o.io/touch-dummy``, touched when a delay ran out (a retry's backoff, a daemon still stopping).

Kopf posts no Events (``settings.posting.enabled`` is off: we post our own), writes no ``status.kopf``
(progress lives in annotations) and no peering objects (``standalone``). All its requests go through one
session, which Kopf takes from the login handler when it gets one (:class:`kopf.AiohttpSession`).

Owns: :func:`fenced_session`, that session: made as Kopf makes it from the same :class:`kopf.ConnectionInfo`
(its TLS context, headers, proxy), but with a :class:`~o4o_operator.kubeapi_transport.FencedConnector` (our
own client's too), which asks the guard (:meth:`o4o_operator.fencing.Term.check`) about every request but a
read, before it takes a connection and again once it has one, the last point before the request is written. Every
attempt passes it, Kopf's retries included, so a replica paused past its lease refuses Kopf's patch on waking,
on its own clock, as it refuses its own writes; the refusal (:class:`~o4o_operator.fencing.Deposed`) deposes
the term, and Kopf, seeing an error it does not know in its event processing, stops the operator.
Must not: change Kopf's requests in any other way, nor refuse a read (watching and listing go on until the
process stops).
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp
import kopf

from o4o_operator.kubeapi_transport import FencedConnector


def fenced_session(info: kopf.ConnectionInfo, guard: Callable[[str], None]) -> kopf.AiohttpSession:
    """Kopf's session for ``info``, every write of it asking ``guard`` first (Kopf closes it when it is done)."""
    session = aiohttp.ClientSession(
        connector=FencedConnector(guard, limit=0, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=bool(info.trust_env))
    return kopf.AiohttpSession(server=info.server, default_namespace=info.default_namespace,
                               priority=info.priority, expiration=info.expiration, aiohttp_session=session)
