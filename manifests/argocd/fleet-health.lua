-- Argo CD health check for deploy.o4o.io/DeploymentFleet.
-- Install it under resource.customizations.health.deploy.o4o.io_DeploymentFleet in argocd-cm
-- (see README.md). It reads the kstatus conditions the operator writes (Ready, Reconciling,
-- Stalled), status.observedGeneration and status.currentWave. A halted rollout is Degraded; a
-- paused fleet or a wave waiting at its manual gate (maxUnavailable: 0) is Suspended.

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

local hs = {}
local status = obj.status

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

-- A status written for an older generation says nothing about the current spec.
local generation = obj.metadata and obj.metadata.generation
if status.observedGeneration == nil or (generation ~= nil and status.observedGeneration ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition(status, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = condition(status, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

if ready ~= nil and (ready.reason == "Paused" or ready.reason == "WaitingForPromotion") then
  hs.status = "Suspended"
  hs.message = describe(ready, ready.reason)
  return hs
end

hs.status = "Progressing"
local wave = ""
if status.currentWave ~= nil then
  wave = " (wave " .. status.currentWave .. ")"
end
hs.message = describe(ready, "Rolling out") .. wave
return hs
