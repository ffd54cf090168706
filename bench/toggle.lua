-- POST /me/consents/<purpose> as a random signed-in member, the way the page's htmx
-- switch sends it: form body granted=1|0, the CSRF token in X-CSRFToken, HX-Request: true
-- (so the answer is the switch fragment, not a redirect).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local purposes = { "advertising", "trend_analysis" }

function request()
  local member = random_member()
  local purpose = purposes[math.random(#purposes)]
  local body = "granted=" .. tostring(math.random(0, 1))
  return wrk.format("POST", "/me/consents/" .. purpose, {
    ["Cookie"] = member.cookie,
    ["X-CSRFToken"] = member.csrf,
    ["HX-Request"] = "true",
    ["Content-Type"] = "application/x-www-form-urlencoded",
  }, body)
end
