-- The toggle floor (bench/floor_apps.py:toggle_sql): a random member and purpose, on or off;
-- the member goes in a plain cookie (the floor has no sessions).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local purposes = { "advertising", "trend_analysis" }

function request()
  local member = random_member()
  return wrk.format("POST", "/me/consents/" .. purposes[math.random(2)],
                    { ["Content-Type"] = "application/x-www-form-urlencoded",
                      ["Cookie"] = "member=" .. member.id },
                    "granted=" .. (math.random(2) - 1))
end
