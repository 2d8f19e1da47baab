
local configured, probe, persist, every, refused, admitted = numbers(1, 6)
local now = clock_us(ARGV[7])
local h = redis.call('HMGET', KEYS[1], 'n', 'changed', 'evidence', 'raised')
local n = tonumber(h[1] or configured)
if n > configured then n = configured end
local changed = tonumber(h[2])
local evidence = tonumber(h[3])
local raised = h[4] == '1'
local function recent(t, within) return t ~= nil and now < t + within end
local strong = refused >= 2 or recent(evidence, persist) or (raised and recent(changed, probe))
redis.call('HSET', KEYS[1], 'evidence', string.format('%.0f', now))
if not strong then return {0, n, n} end
if (not raised) and recent(changed, every) then return {2, n, n} end
local to = math.floor(n / 2)
if admitted >= 1 and admitted < to then to = admitted end
if to < 1 then to = 1 end
if to >= n then return {2, n, n} end
redis.call('HSET', KEYS[1], 'n', to, 'changed', string.format('%.0f', now), 'raised', '0')
return {1, to, n}
