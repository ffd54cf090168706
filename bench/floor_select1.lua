-- GET / on the select1 floor (bench/floor_apps.py).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  math.random(1000)
  return wrk.format("GET", "/")
end
