-- Argo CD health check for deploy.o4o.io/DeploymentInstance.
-- Argo CD has no generic health for custom resources: without this script every
-- DeploymentInstance shows Healthy, whatever happens to it.
-- Install it under resource.customizations.health.deploy.o4o.io_DeploymentInstance
-- in argocd-cm (see README.md). It reads the kstatus conditions the operator writes
-- (Ready, Reconciling, Stalled), status.phase, status.observedGeneration and status.driftFindings.
-- Argo CD runs it in a sandbox with the global `obj` (the live object) and the
-- base, table, string and math libraries; it must return {status=..., message=...}.

local function condition(status, condition_type)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == condition_type then
      return c
    end
  end
  return nil
end

local function describe(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil then
    return c.reason
  end
  return fallback
end

-- What the operator's drift check found lost while the instance is stalled (status.driftFindings):
-- not why it stalled, but the user should see it too.
local function drift_note(status)
  if status.driftFindings == nil or #status.driftFindings == 0 then
    return ""
  end
  local found = {}
  for _, finding in ipairs(status.driftFindings) do
    table.insert(found, finding.message or finding.reason or "")
  end
  return ". The drift check also found: " .. table.concat(found, "; ")
end

local hs = {}
local spec = obj.spec or {}
local status = obj.status

-- Paused: the operator deliberately makes no changes.
if spec.paused == true then
  hs.status = "Suspended"
  hs.message = "Paused: spec.paused is true"
  return hs
end
local annotations = (obj.metadata and obj.metadata.annotations) or {}
if string.lower(annotations["deploy.o4o.io/paused"] or "") == "true" then
  hs.status = "Suspended"
  hs.message = "Paused: annotation deploy.o4o.io/paused is true"
  return hs
end

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local reconciling = condition(status, "Reconciling")
if reconciling ~= nil and reconciling.status == "False" and reconciling.reason == "Paused" then
  hs.status = "Suspended"
  hs.message = describe(reconciling, "Paused")
  return hs
end

-- A status written for an older generation says nothing about the current spec.
local generation = obj.metadata and obj.metadata.generation
if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

-- Argo CD reports objects with a deletionTimestamp as Progressing before running this script;
-- the same here, for the operator's own Deleting phase (teardown in progress).
if status.phase == "Deleting" or (obj.metadata and obj.metadata.deletionTimestamp ~= nil) then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator is tearing the installation down"
  return hs
end

local stalled = condition(status, "Stalled")
if (stalled ~= nil and stalled.status == "True") or status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(stalled, describe(condition(status, "Ready"), "Failed")) .. drift_note(status)
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  local progress = ""
  if status.stageProgress ~= nil then
    progress = " (" .. status.stageProgress .. ")"
  end
  hs.message = describe(reconciling, describe(ready, "Reconciling")) .. progress
  return hs
end

-- Not Ready, not working on it and not stalled: e.g. the drift check failed.
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(ready, "Not ready")
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Waiting for the Ready condition")
return hs
