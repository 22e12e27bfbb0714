-- Admission for one request, atomically, in one round trip (see ratelimit.ts).
-- KEYS: 1 revoked-keys set, 2 request bucket, 3 token bucket, 4 key's open requests (zset),
--       5 tenant's open requests on this deployment (zset), 6 the key's state (hash: exp, budget,
--       written by the admin API on every change), 7 the key's token count this month
-- ARGV: 1 key id, 2 rpm, 3 tpm, 4 max concurrent, 5 tenant cap per model (0 = none),
--       6 tokens to reserve, 7 request id, 8 lease ms (how long an open request may hold a slot),
--       9 expiry (unix ms, 0 = none) and 10 monthly token budget (0 = none) as the gateway last
--       read them from Postgres: used when the state hash has no such field, 11 the hash of the
--       secret presented (checked against the state's `h`, or `ph` until `pu`, once a rotation wrote them)
-- Returns {code, retry_ms, requests_remaining, requests_reset_ms, tokens_remaining, tokens_reset_ms}
-- code: 0 admitted, 1 key revoked, 2 rpm, 3 tpm, 4 key concurrency, 5 tenant concurrency,
--       6 monthly budget spent, 7 key expired.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {1, 0, 0, 0, 0, 0} end
local state = redis.call('HMGET', KEYS[6], 'exp', 'budget', 'h', 'ph', 'pu')
-- A secret rotated out (its grace over) on another gateway: refused even where a cache still holds it.
if state[3] and ARGV[11] ~= '' and state[3] ~= ARGV[11] then
  if not (state[4] == ARGV[11] and now < tonumber(state[5] or '0')) then return {1, 0, 0, 0, 0, 0} end
end
local exp = tonumber(state[1] or ARGV[9])
local budget = tonumber(state[2] or ARGV[10])
if exp > 0 and now >= exp then return {7, 0, 0, 0, 0, 0} end
local spent = tonumber(redis.call('GET', KEYS[7]) or '0')
if budget > 0 and spent >= budget then return {6, 0, 0, 0, 0, 0} end
local rpm, tpm, maxc, tcap = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cost, id, lease = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])

-- Token bucket: capacity = the per-minute limit, refilled continuously at limit/60 s.
local function level(key, cap)
  local v = redis.call('HMGET', key, 'l', 't')
  local l, ts = tonumber(v[1]), tonumber(v[2])
  if l == nil then return cap end
  l = l + (now - ts) * cap / 60000
  if l > cap then l = cap end
  return l
end
local function store(key, cap, l)
  redis.call('HSET', key, 'l', l, 't', now)
  -- Forgotten once full again: an absent bucket is a full one.
  redis.call('PEXPIRE', key, math.max(1, math.ceil((cap - l) * 60000 / cap)))
end
local function reset_ms(cap, l)
  if cap <= 0 then return 0 end
  return math.max(0, math.ceil((cap - l) * 60000 / cap))
end

local code, wait = 0, 0
local rl, tl = rpm, tpm
if rpm > 0 then
  rl = level(KEYS[2], rpm)
  if rl < 1 then code, wait = 2, math.ceil((1 - rl) * 60000 / rpm) end
end
if tpm > 0 then
  tl = level(KEYS[3], tpm)
  local need = math.min(cost, tpm)
  if code == 0 and tl < need then code, wait = 3, math.ceil((need - tl) * 60000 / tpm) end
end
if code == 0 and maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  if redis.call('ZCARD', KEYS[4]) >= maxc then
    code, wait = 4, 1000
  end
end
if code == 0 and tcap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now)
  if redis.call('ZCARD', KEYS[5]) >= tcap then code, wait = 5, 1000 end
end
if code == 0 then
  -- Every admitted request's reservation counts toward the month (settled to the real count).
  redis.call('INCRBY', KEYS[7], cost)
  redis.call('PEXPIRE', KEYS[7], 3024000000)
  if rpm > 0 then rl = rl - 1; store(KEYS[2], rpm, rl) end
  if tpm > 0 then tl = tl - cost; store(KEYS[3], tpm, tl) end
  if maxc > 0 then redis.call('ZADD', KEYS[4], now + lease, id); redis.call('PEXPIRE', KEYS[4], lease) end
  if tcap > 0 then redis.call('ZADD', KEYS[5], now + lease, id); redis.call('PEXPIRE', KEYS[5], lease) end
end
return {code, wait, math.floor(rl), reset_ms(rpm, rl), math.floor(tl), reset_ms(tpm, tl)}
