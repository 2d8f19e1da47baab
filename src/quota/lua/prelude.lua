
-- Redis's clock in µs; the tests pass their own "now" instead.
local function clock_us(override)
  if override and override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- ARGV[from..to] as numbers (nil where one is absent), for `local a, b = numbers(1, 2)`.
local function numbers(from, to)
  local out = {}
  for i = from, to do out[i - from + 1] = tonumber(ARGV[i]) end
  return unpack(out, 1, to - from + 1)
end
