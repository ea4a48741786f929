"""Keeping an instance's full log in its ConfigMap ``<name>-log``.

Owns: writing the log to the ConfigMap the operator made for the instance, reading back what was saved
there before (by an earlier pass that then forgot it, or before an operator restart) so a save never loses
it, adopting one retained from an earlier instance of the same name, and leaving one the operator did not
make alone (said once, as a warning Event).
Must not: raise (the status tail still holds the latest lines), or write any ConfigMap it does not own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from o4o_operator.kubeapi import KubeApi
from o4o_operator.models_database import INSTANCE_LABEL
from o4o_operator.runner.log import InstanceLog
from o4o_operator.runner.made_items import log_configmap_name

logger = logging.getLogger("o4o_operator.worker")


@dataclasses.dataclass
class LogKeeping:
    foreign_reported: bool = False
    """A ConfigMap of the log's name that is not ours was reported (once per worker)."""


async def save_log(kube: KubeApi, body: Mapping[str, Any], log: InstanceLog, keeping: LogKeeping) -> bool:
    """Write ``log``'s full text to the instance's ConfigMap: ours, or one retained from an earlier instance of
    this name (adopted, its lines kept before ours). Returns whether it was written."""
    meta = body["metadata"]
    name, labels = log_configmap_name(meta["name"]), {INSTANCE_LABEL: meta["name"]}
    with contextlib.suppress(Exception):
        if not log.earlier_known:  # saved before (by this worker, or before a restart): keep it
            saved = await kube.read_owned_configmap(meta["namespace"], name, meta["uid"])
            log.keep_earlier((saved or {}).get("log", ""))
            log.earlier_known = True
        if await kube.apply_configmap(meta["namespace"], name, {"log": log.full_text}, body, labels):
            log.saved()
            return True
        earlier = await kube.adopt_released("configmaps", meta["namespace"], name, body, labels)
        if earlier is not None:
            log.keep_earlier(str(earlier.get("log", "")))
            if await kube.apply_configmap(meta["namespace"], name, {"log": log.full_text}, body, labels):
                log.saved()
                return True
        if not keeping.foreign_reported:  # left alone: it is someone else's; say so once
            keeping.foreign_reported = True
            logger.warning("Left ConfigMap %s/%s alone: it exists and the operator did not make it for %s; "
                           "the log stays in status.logTail only", meta["namespace"], name, meta["name"])
            await kube.post_event(body, "LogConfigMapNotOwned", f"ConfigMap {name} exists and is not the "
                                  "operator's: it was left alone, and the log is kept in status.logTail only",
                                  warning=True)
    return False
