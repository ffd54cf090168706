-- The consents floor (bench/floor_apps.py:consents_bare): the API's request, as
-- api_consents.lua sends it (the run's token arrives as member.csrf).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  local member = random_member()
  return wrk.format("GET", "/api/v1/members/" .. member.id .. "/consents",
                    { ["Authorization"] = "Bearer " .. member.csrf })
end
