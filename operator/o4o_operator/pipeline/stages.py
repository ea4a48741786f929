"""The nine stages, as a frozen table of data.

Owns: stage names, their order, the condition each one sets, the phase shown
while it runs, its timeout and retry budget, and which spec fields are its
inputs (a change to any of them makes the stage run again). Purely
computational: no I/O.
"""

from __future__ import annotations

import dataclasses
import enum

from o4o_operator.models import Phase


class StageName(enum.StrEnum):
    PROVISION = "provision"
    DNS = "dns"
    RUNTIME = "runtime"
    SOURCE = "source"
    BUILD_SITE = "build-site"
    BUILD_API = "build-api"
    CONFIGURE = "configure"
    TLS = "tls"
    APPS = "apps"


@dataclasses.dataclass(frozen=True)
class Stage:
    name: StageName
    condition: str
    phase: Phase
    title: str
    timeout_seconds: float
    inputs: tuple[str, ...]
    """Dotted spec paths (plus ``facts.*`` observed values) whose change re-runs the stage."""
    max_backoff_seconds: float = 300.0


_REVISION = ("source.repository", "source.revision")
_HOST = "facts.serverAddress"  # a replaced server must be set up again from scratch

STAGES: tuple[Stage, ...] = (
    Stage(StageName.PROVISION, "ServerReady", Phase.PROVISIONING, "Provision the server",
          900, ("provider", "ssh.user", "ssh.hostKeyFingerprint", "ssh.trustOnFirstUse")),
    Stage(StageName.DNS, "DnsReady", Phase.PROVISIONING, "Create the DNS record",
          600, ("domain", "dns", "facts.serverAddress")),
    Stage(StageName.RUNTIME, "RuntimeReady", Phase.INSTALLING, "Install Node.js, pnpm, nginx and PM2",
          1200, (_HOST,)),
    Stage(StageName.SOURCE, "SourceReady", Phase.INSTALLING, "Fetch the source at its revision",
          600, (*_REVISION, _HOST)),
    Stage(StageName.BUILD_SITE, "SiteBuilt", Phase.BUILDING, "Build the main site",
          1800, (*_REVISION, "facts.commit", _HOST)),
    Stage(StageName.BUILD_API, "ApiBuilt", Phase.BUILDING, "Build the API server",
          1800, (*_REVISION, "facts.commit", _HOST)),
    Stage(StageName.CONFIGURE, "Configured", Phase.CONFIGURING, "Configure nginx, PM2 and .env",
          600, ("domain", "apiPort", *_REVISION, "facts.commit", "facts.envVersion", _HOST)),
    Stage(StageName.TLS, "CertificateReady", Phase.CONFIGURING, "Obtain the TLS certificate",
          900, ("domain", "tls", *_REVISION, _HOST)),
    Stage(StageName.APPS, "AppsReady", Phase.CONFIGURING, "Install the apps",
          1200, ("apps", *_REVISION, "facts.commit", _HOST)),
)

STAGES_BY_NAME: dict[StageName, Stage] = {stage.name: stage for stage in STAGES}
STAGE_COUNT = len(STAGES)
