
-- Redis's clock in µs; the tests pass their own "now" instead.
local function clock_us(override)
  if override and override ~= '' then return tonumber(override) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
