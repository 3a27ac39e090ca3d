-- PATCH {base}{id} displayName=…, a new value on every request: an attribute sync that
-- changes no access and so records no event. Args: base-path ids-file
local base, ids
local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],' ..
  '"Operations":[{"op":"replace","path":"displayName","value":"n%d-%d"}]}'
function init(args)
  base = args[1]
  ids = read_lines(args[2])
end
function request()
  local k = sent
  sent = sent + 1
  return wrk.format("PATCH", base .. ids[(k * 7 + tid) % #ids + 1], nil, string.format(body, tid, k))
end
