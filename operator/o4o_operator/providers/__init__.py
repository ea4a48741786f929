"""Providers: the only code that talks to clouds, DNS services and hosts.

Each kind is a Protocol in :mod:`o4o_operator.providers.protocols`, with a real
implementation here and a local peer in :mod:`o4o_operator.testing`. Providers
must not import Kopf or decide what to do next: that is the pipeline's job.
"""
