-- GET /api/v1/members/<id>/consents as a downstream system would: a random member per
-- request, with the run's bearer token. The lines written by bench/api_bench.py use
-- common.lua's format ("<public_id>\t<x>\t<token>"), so the token arrives as member.csrf.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  local member = random_member()
  return wrk.format("GET", "/api/v1/members/" .. member.id .. "/consents",
                    { ["Authorization"] = "Bearer " .. member.csrf })
end
