
local id = ARGV[1]
local stale, expire, hold_for, probe, expected = numbers(3, 7)
local now = clock_us(ARGV[8])
local not_after = tonumber(ARGV[9])
if not_after > 0 and now > not_after then
  return {0, now}
end
local seq = tonumber(ARGV[13])
local hold = 0
local prev = redis.call('HGET', KEYS[1], id)
if prev then
  local prev_hold, prev_seq = string.match(prev, '^%d+,(%d+),%d+,%d+,%d+,(%d+)$')
  if prev_seq and tonumber(prev_seq) >= seq then
    return {0, now}
  end
  hold = tonumber(prev_hold) or 0
end
local epoch = epoch_check(KEYS[2], tonumber(ARGV[10]), tonumber(ARGV[11]), now)
local reach = tonumber(ARGV[12])
if ARGV[2] ~= '' then
  local until_ = now + hold_for - tonumber(ARGV[2])
  if until_ > hold then hold = until_ end
end
redis.call('HSET', KEYS[1], id, string.format('%.0f,%.0f,%.0f,%.0f,%.0f,%.0f', now, hold, stale, expire, reach, seq))
local entries = redis.call('HGETALL', KEYS[1])
local live = 0
local fleet_reach = reach
local gone = {}
for i = 1, #entries, 2 do
  local beat, _, _, their_expire, their_reach = string.match(entries[i + 1], '^(%d+),(%d+),(%d+),(%d+),(%d+),%d+$')
  beat = tonumber(beat)
  if beat == nil or now > beat + tonumber(their_expire) then
    redis.call('HDEL', KEYS[1], entries[i])
    table.insert(gone, entries[i])
  else
    live = live + 1
    their_reach = tonumber(their_reach)
    if their_reach > fleet_reach then fleet_reach = their_reach end
  end
end
local divisor = math.max(live, expected, 1)
local out = {1, now, epoch, live, fleet_reach}
local actions = (#KEYS - 2) / 2
for k = 1, actions do
  local shares = KEYS[2 * k + 1]
  local learn = KEYS[2 * k + 2]
  local configured = tonumber(ARGV[12 + 2 * k])
  local held = tonumber(ARGV[13 + 2 * k])
  for _, g in ipairs(gone) do redis.call('HDEL', shares, g) end
  local h = redis.call('HMGET', learn, 'n', 'changed', 'evidence')
  local n = tonumber(h[1] or configured)
  if n > configured then n = configured end
  local changed = tonumber(h[2])
  local evidence = tonumber(h[3])
  local function quiet(t) return t == nil or now >= t + probe end
  if n < configured and quiet(changed) and quiet(evidence) then
    n = n + 1
    redis.call('HSET', learn, 'n', n, 'changed', string.format('%.0f', now), 'raised', '1')
  end
  local fair = math.floor(n / divisor)
  local others = 0
  local all = redis.call('HGETALL', shares)
  for i = 1, #all, 2 do
    if all[i] ~= id then others = others + tonumber(all[i + 1]) end
  end
  local share = math.min(fair, math.max(0, n - others))
  redis.call('HSET', shares, id, math.max(held, share))
  table.insert(out, share)
  table.insert(out, n)
end
return out
