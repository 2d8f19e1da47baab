
local now = clock_us(nil)
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry then
  local hold = tonumber(string.match(entry, '^%d+,(%d+),') or '0')
  if hold > now then return 0 end
end
for i = 1, #KEYS do redis.call('HDEL', KEYS[i], ARGV[1]) end
return 1
