"""The pipeline: pure decisions about what a DeploymentInstance needs next.

Given the spec, the status and observed facts (and the clock, passed in), it
returns what to do. It performs no I/O and imports no framework or client.
"""
