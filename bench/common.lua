-- Shared by the wrk scenario scripts (hello.lua, me.lua, toggle.lua, api_consents.lua, ...).
--
-- * Loads the signed-in members written by bench/run.py: one line each,
--   "<public_id>\t<cc_session cookie value>\t<CSRF token>"; the path is the first
--   script argument (wrk ... -s bench/me.lua URL -- members.tsv).
-- * Seeds math.random differently in each wrk thread (LuaJIT starts every state with
--   the same seed, so both threads would otherwise pick the same members in step).
-- * Counts responses by status. wrk's own "Non-2xx or 3xx responses" lets redirects
--   pass, and an expired or forged session is a 302 to the sign-in page, so here
--   anything but 2xx is an error. done() prints one BENCH_STATUS line for run.py.

members = {}
local threads = {}
local created = 0

function setup(thread)
  created = created + 1
  thread:set("thread_id", created)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + 7919 * (thread_id or 1))
  for _ = 1, 10 do math.random() end
  local path = args[1]
  if path ~= nil and path ~= "" then
    for line in io.lines(path) do
      local id, cookie, token = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)$")
      if id ~= nil then
        members[#members + 1] = { id = id, cookie = "cc_session=" .. cookie, csrf = token }
      end
    end
    if #members == 0 then
      error("no members in " .. path)
    end
  end
  ok_count, bad_count, first_bad_status, first_bad_body = 0, 0, 0, ""
end

function random_member()
  return members[math.random(#members)]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok_count = ok_count + 1
  else
    bad_count = bad_count + 1
    if first_bad_status == 0 then
      first_bad_status = status
      first_bad_body = string.sub(body or "", 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local ok, bad, status, sample = 0, 0, 0, ""
  for _, thread in ipairs(threads) do
    ok = ok + (thread:get("ok_count") or 0)
    bad = bad + (thread:get("bad_count") or 0)
    local s = thread:get("first_bad_status") or 0
    if status == 0 and s ~= 0 then
      status = s
      sample = thread:get("first_bad_body") or ""
    end
  end
  io.write(string.format("BENCH_STATUS ok=%d bad=%d first_bad_status=%d\n", ok, bad, status))
  if sample ~= "" then
    io.write("BENCH_BAD_SAMPLE " .. (string.gsub(sample, "%s+", " ")) .. "\n")
  end
end
