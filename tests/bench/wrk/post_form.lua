-- POST a logout-token form body (the same size as a real one) to the receiver.
-- Args: body-file
local body
function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
end
function request()
  sent = sent + 1
  return wrk.format("POST", nil, nil, body)
end
