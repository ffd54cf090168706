-- GET / on the hello-world baseline (bench/hello.py). Same client-side work as the
-- other scenarios (a random pick, status counting), so the ratios compare like with like.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function request()
  math.random(1000)
  return wrk.format("GET", "/")
end
