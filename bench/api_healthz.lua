-- GET /healthz on the app: one SELECT 1 through the same stack (Flask, hooks, session,
-- pool), measured beside the API as the app's own floor for a database-backed answer.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  return wrk.format("GET", "/healthz")
end
