-- GET {base}?filter=userName eq "…" for random userNames. Args: base-path names-file
-- (the names file holds the already percent-encoded filter values).
local base, names
function init(args)
  base = args[1]
  names = read_lines(args[2])
  math.randomseed(os.time() * 1000 + tid * 7919 + 1)
end
function request()
  sent = sent + 1
  return wrk.format("GET", base .. "?filter=userName%20eq%20%22" .. names[math.random(#names)] .. "%22")
end
