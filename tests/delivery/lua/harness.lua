-- Runs an Argo CD health script the way Argo CD does, closely enough for tests:
--   lua5.1 harness.lua HEALTH_SCRIPT OBJECT_FILE
-- OBJECT_FILE is a Lua chunk returning the live object as a table. The script runs with a
-- global `obj` and only the libraries Argo CD's sandbox opens (base, table, string, math);
-- it must return a table with a status string. Prints the status, a tab, the message.
local script_path, object_path = arg[1], arg[2]
local object = assert(loadfile(object_path))()
local script = assert(loadfile(script_path))

local sandbox = {
  obj = object,
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, unpack = unpack,
  string = string, table = table, math = math,
}
setfenv(script, sandbox)
local hs = script()
if type(hs) ~= "table" or type(hs.status) ~= "string" then
  io.stderr:write("health script did not return {status=...}\n")
  os.exit(2)
end
io.write(hs.status, "\t", tostring(hs.message or ""), "\n")
