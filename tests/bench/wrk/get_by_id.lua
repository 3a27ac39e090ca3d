-- GET {base}{id} for random ids. Args: base-path ids-file
local base, ids
function init(args)
  base = args[1]
  ids = read_lines(args[2])
  math.randomseed(os.time() * 1000 + tid * 7919)
end
function request()
  sent = sent + 1
  return wrk.format("GET", base .. ids[math.random(#ids)])
end
