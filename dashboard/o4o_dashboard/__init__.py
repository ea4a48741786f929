"""o4o-dashboard: a read-only web view of DeploymentInstances and DeploymentFleets.

A separate process from the operator. It keeps a list+watch cache of
DeploymentInstances (and their Events) and DeploymentFleets, and serves HTML pages, a JSON API and a
Server-Sent Events stream from that cache alone; a page view never calls the
Kubernetes API. It never writes to the cluster and never reads Secrets.

Layout (each module's docstring says what it owns and must not do):
``bodies`` and ``views``/``detail``/``fleets`` are pure; ``credentials`` and ``kubeapi`` talk
to the API; ``reflector`` fills ``cache``; ``web``/``live``/``security`` serve it;
``service`` wires them together; ``cli`` parses flags.
"""

__version__ = "0.1.0"
