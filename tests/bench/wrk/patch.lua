-- PATCH {base}{id} active=…, each request changing the user's state. Args: base-path
-- state-file (lines "id,active" with the current state) thread-count. Thread t takes the users whose
-- index is t modulo the thread count, in order; on each new lap over its share the value
-- flips again, so every request is a change (deactivation or re-activation).
local base, mine, lap_size
function init(args)
  base = args[1]
  local nthreads = tonumber(args[3])
  mine = {}
  local all = read_lines(args[2])
  for i = tid + 1, #all, nthreads do
    local id, active = all[i]:match("^([^,]+),(%a+)$")
    mine[#mine + 1] = { id = id, active = (active == "true") }
  end
  lap_size = #mine
end
local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
  '"Operations":[{"op":"replace","path":"active","value":%s}]}'
function request()
  local k = sent
  sent = sent + 1
  local u = mine[(k % lap_size) + 1]
  local lap = math.floor(k / lap_size)
  -- lap 0 sets the opposite of the current state, lap 1 restores it, …
  local value = u.active
  if lap % 2 == 0 then value = not value end
  return wrk.format("PATCH", base .. u.id, nil, string.format(body, tostring(value)))
end
