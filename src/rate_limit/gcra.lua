-- One rate-limit decision, atomically and on Redis's clock, so that every replica agrees on
-- "now" (GCRA: a bucket is the theoretical arrival time of its next request, in µs).
--
-- KEYS[1]  the client address's block key (set once it spent its failed-authentication budget)
-- KEYS[2]  the bucket this attempt is counted in
-- ARGV[1]  'accepted' (a request of the caller's budget), 'failed' (a failed authentication of
--          the address's budget: a refusal blocks the address) or 'refused' (nothing counted)
-- ARGV[2]  µs for one request's worth to come back, ARGV[3] the burst
-- ARGV[4]  '1' when failed authentications are limited (the block key counts)
--
-- Returns {verdict, remaining, wait µs, µs until the bucket is full}; verdict 0 allowed,
-- 1 refused, 2 blocked, 3 nothing counted.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
if ARGV[4] == '1' then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then
    local full_at = tonumber(redis.call('GET', KEYS[1])) or now
    return {2, 0, pttl * 1000, math.max(full_at - now, 0)}
  end
end
local mode = ARGV[1]
if mode == 'refused' then
  return {3, 0, 0, 0}
end
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[2])) or now
if tat < now then
  tat = now
end
local next_tat = tat + interval
local wait = next_tat - burst * interval - now
if wait > 0 then
  if mode == 'failed' then
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.max(1, math.ceil(wait / 1000)))
  end
  return {1, 0, wait, tat - now}
end
redis.call('SET', KEYS[2], string.format('%d', next_tat), 'PX', math.max(1, math.ceil((next_tat - now) / 1000)))
return {0, math.floor((burst * interval - (next_tat - now)) / interval), 0, next_tat - now}
