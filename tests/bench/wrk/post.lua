-- POST {base} with a new user each time. Args: base-path run-tag
local base, tag
function init(args)
  base = args[1]
  tag = args[2]
end
local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],' ..
  '"userName":"%s@example.com","externalId":"ext-%s",' ..
  '"name":{"givenName":"Given","familyName":"%s","formatted":"Given %s"},' ..
  '"displayName":"Given %s","emails":[{"value":"%s@example.com","type":"work","primary":true}],' ..
  '"active":true}'
function request()
  sent = sent + 1
  local n = string.format("%s-%d-%d", tag, tid, sent)
  return wrk.format("POST", base, nil, string.format(body, n, n, n, n, n, n))
end
