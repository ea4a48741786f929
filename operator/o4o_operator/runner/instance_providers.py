"""The cloud and DNS providers of one instance, built from its spec with the operator's factories.

Owns: :class:`InstanceProviders`: the client settings (the spec's credentials Secret, read through the pass's
:class:`~o4o_operator.runner.secret_cache.SecretCache`, made into settings by
:func:`~o4o_operator.runner.inventory.client_settings_for` as teardown's are, and counted in the instance's
in-flight calls so that teardown can wait for them), the Lightsail provider of the spec's region, the DNS
provider the spec names, and the name check for DNS managed elsewhere. Must not decide whether a call may use
the operator's own identity (the stages check ``O4O_AMBIENT_GRANTS`` first), and must not call the providers.
"""

from __future__ import annotations

from o4o_operator.models import DeploymentInstanceSpec
from o4o_operator.providers.aws import ClientSettings
from o4o_operator.providers.protocols import CloudProvider, DnsProvider, NameCheck
from o4o_operator.runner.inventory import access_for, client_settings_for
from o4o_operator.runner.runtime import Runtime
from o4o_operator.runner.secret_cache import SecretCache

CREDENTIALS_FIELD = "spec.provider.lightsail.credentialsSecretRef"


class InstanceProviders:
    """The providers of one instance during one pass."""

    def __init__(self, runtime: Runtime, spec: DeploymentInstanceSpec, uid: str, secrets: SecretCache) -> None:
        self._runtime = runtime
        self._spec = spec
        self._uid = uid
        self._secrets = secrets

    async def client_settings(self) -> ClientSettings:
        return await client_settings_for(self._secrets.secret, access_for(self._spec), self._runtime.settings,
                                         field=CREDENTIALS_FIELD, in_flight=self._runtime.in_flight_for(self._uid))

    async def cloud(self) -> CloudProvider:
        lightsail = self._spec.provider.lightsail
        assert lightsail is not None, "cloud() is only for the lightsail provider"
        return self._runtime.cloud(lightsail.region, await self.client_settings())

    async def dns(self) -> DnsProvider:
        return self._runtime.dns(self._spec.dns.provider, await self.client_settings())

    def name_check(self) -> NameCheck:
        """For DNS managed elsewhere: confirms the domain resolves to the server."""
        return self._runtime.name_check_factory(self._runtime.resolver)
