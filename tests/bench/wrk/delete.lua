-- DELETE {base}{id}, each id once. Args: base-path ids-file thread-count. Thread t takes the ids whose
-- index is t modulo the thread count. Past the end it starts over, and those requests
-- answer 404 (counted in status_errors): give it enough ids.
local base, mine
function init(args)
  base = args[1]
  local nthreads = tonumber(args[3])
  mine = {}
  local all = read_lines(args[2])
  for i = tid + 1, #all, nthreads do mine[#mine + 1] = all[i] end
end
function request()
  local k = sent
  sent = sent + 1
  return wrk.format("DELETE", base .. mine[(k % #mine) + 1])
end
