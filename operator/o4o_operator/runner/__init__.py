"""The runner: carries out the pipeline's decisions with providers and the Kubernetes API.

It sits between the thin Kopf handlers and the pure pipeline. It owns the
per-instance worker loop, the stage actions, status/event/log writes and
teardown. It must not encode decisions itself (that is the pipeline's job) and
must not import Kopf.
"""
