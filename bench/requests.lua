-- wrk script: cycle through pre-built requests, one per line of the file given after `--`:
-- METHOD<TAB>PATH<TAB>name: value|name: value<TAB>body
-- Each wrk thread starts at a different offset so threads do not send the same request together.

local requests = {}
local counter = 0
local threads = 0

function setup(thread)
  thread:set("offset", threads * 7919)
  threads = threads + 1
end

local function split(line, sep)
  local parts, start = {}, 1
  for _ = 1, 3 do
    local at = string.find(line, sep, start, true)
    parts[#parts + 1] = string.sub(line, start, at - 1)
    start = at + 1
  end
  parts[#parts + 1] = string.sub(line, start)
  return parts
end

function init(args)
  for line in io.lines(args[1]) do
    local method, path, header_text, body = unpack(split(line, "\t"))
    local headers = {}
    for pair in string.gmatch(header_text, "[^|]+") do
      local name, value = string.match(pair, "^([^:]+): (.*)$")
      headers[name] = value
    end
    if body == "" then body = nil end
    requests[#requests + 1] = wrk.format(method, path, headers, body)
  end
  counter = offset or 0
end

function request()
  counter = counter + 1
  return requests[(counter % #requests) + 1]
end
