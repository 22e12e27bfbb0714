-- Writes a deployment's slot leases (the fast path), only while ARGV[1] holds its dispatch lease
-- and ARGV[2] is its current slot epoch: a scheduler that lost the deployment writes nothing.
-- KEYS[1]: the dispatch lease; KEYS[2]: the slot epoch; KEYS[3..]: one gateway's lease each.
-- ARGV[3]: the leases' TTL (ms); ARGV[4..]: per lease, a JSON object of its fields, or "" to delete it.
-- Returns 1 when written, 0 when fenced off.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(redis.call('GET', KEYS[2]) or '0') ~= tonumber(ARGV[2]) then return 0 end
for i = 3, #KEYS do
  local fields = ARGV[i + 1]
  if fields == '' then
    redis.call('DEL', KEYS[i])
  else
    local flat = {}
    for k, v in pairs(cjson.decode(fields)) do
      flat[#flat + 1] = k
      flat[#flat + 1] = v
    end
    redis.call('HSET', KEYS[i], unpack(flat))
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  end
end
return 1
