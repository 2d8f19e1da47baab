
local configured, guard, max_wait, earliest = numbers(1, 4)
local id = ARGV[5]
local lo, known, blackout, cap = numbers(6, 9)
local now = clock_us(ARGV[10])
local epoch, quiet_until = epoch_check(KEYS[6], known, blackout, now)
local n = tonumber(redis.call('HGET', KEYS[2], 'n') or configured)
if n > configured then n = configured end
local reserved = 0
local fleet = redis.call('HGETALL', KEYS[3])
for i = 1, #fleet, 2 do
  local beat, hold, stale, expire = string.match(fleet[i + 1], '^(%d+),(%d+),(%d+),(%d+)')
  beat = tonumber(beat)
  if beat and now <= beat + tonumber(expire) then
    if now > beat + tonumber(stale) or now < tonumber(hold) then
      reserved = reserved + tonumber(redis.call('HGET', KEYS[4], fleet[i]) or '0')
    end
  end
end
local own_guard = guard
local lo_min, lo_max
if lo > 0 then lo_min = lo; lo_max = lo end
local active = redis.call('HGETALL', KEYS[5])
for i = 1, #active, 2 do
  local g, l, till = string.match(active[i + 1], '^(%d+),(%d+),(%d+)$')
  if till == nil or tonumber(till) < now then
    redis.call('HDEL', KEYS[5], active[i])
  elseif active[i] ~= id then
    g = tonumber(g)
    l = tonumber(l)
    if g > guard then guard = g end
    if l > 0 then
      if lo_min == nil or l < lo_min then lo_min = l end
      if lo_max == nil or l > lo_max then lo_max = l end
    end
  end
end
if lo_min then guard = guard + (lo_max - lo_min) end
if guard > cap then guard = cap end
if own_guard > guard then guard = own_guard end
local window = 1000000 + guard
local limit = n - reserved
if limit < 1 then
  return {0, 1000000, 0, 0, window, epoch}
end
local slot = now + earliest
if quiet_until > slot then slot = quiet_until end
local len = redis.call('LLEN', KEYS[1])
if len > 0 then
  local latest = tonumber(redis.call('LINDEX', KEYS[1], -1))
  if latest > slot then slot = latest end
end
if len >= limit then
  local nth_latest = tonumber(redis.call('LINDEX', KEYS[1], len - limit))
  if nth_latest + window > slot then slot = nth_latest + window end
end
local wait = slot - now
if wait > max_wait then
  return {0, wait - max_wait, 0, limit, window, epoch}
end
redis.call('RPUSH', KEYS[1], string.format('%.0f', slot))
local horizon = now - 1000000 - cap
for _ = 1, 64 do
  local first = tonumber(redis.call('LINDEX', KEYS[1], 0))
  if first == nil or first >= horizon then break end
  redis.call('LPOP', KEYS[1])
end
redis.call('LTRIM', KEYS[1], -10000, -1)
redis.call('PEXPIRE', KEYS[1], math.floor((wait + window) / 1000) + 1000)
redis.call('HSET', KEYS[5], id, string.format('%.0f,%.0f,%.0f', own_guard, lo, slot + window))
redis.call('PEXPIRE', KEYS[5], math.floor((wait + window) / 1000) + 1000)
return {1, slot, wait, limit, window, epoch}
