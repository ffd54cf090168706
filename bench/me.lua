-- GET /me as a random signed-in member: the "what we hold about you" page with the
-- consent switches (session cookie only; a GET needs no CSRF token).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  local member = random_member()
  return wrk.format("GET", "/me", { ["Cookie"] = member.cookie })
end
