-- A request ended: settle its token reservation to the real count and free its slots.
-- KEYS: 1 token bucket, 2 key's open requests, 3 tenant's open requests on the deployment,
--       4 the key's token count for the month the request was admitted in
-- ARGV: 1 tpm, 2 tokens reserved minus tokens used (a refund; negative charges more), 3 request id
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tpm, delta = tonumber(ARGV[1]), tonumber(ARGV[2])
if tpm > 0 and delta ~= 0 then
  local v = redis.call('HMGET', KEYS[1], 'l', 't')
  local l, ts = tonumber(v[1]), tonumber(v[2])
  if l == nil then l = tpm else l = math.min(tpm, l + (now - ts) * tpm / 60000) end
  l = math.min(tpm, l + delta)
  redis.call('HSET', KEYS[1], 'l', l, 't', now)
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil((tpm - l) * 60000 / tpm)))
end
if delta ~= 0 and redis.call('EXISTS', KEYS[4]) == 1 then redis.call('DECRBY', KEYS[4], delta) end
redis.call('ZREM', KEYS[2], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return 1
