
local function epoch_check(key, known, blackout, now)
  local e = redis.call('HMGET', key, 'id', 'until')
  local id = tonumber(e[1])
  local quiet_until = tonumber(e[2] or '0') or 0
  if id == nil then
    id = now
    quiet_until = 0
    if known ~= 0 then quiet_until = now + blackout end
    redis.call('HSET', key, 'id', string.format('%.0f', id), 'until', string.format('%.0f', quiet_until))
  elseif known ~= 0 and known ~= id and now + blackout > quiet_until then
    quiet_until = now + blackout
    redis.call('HSET', key, 'until', string.format('%.0f', quiet_until))
  end
  return id, quiet_until
end
