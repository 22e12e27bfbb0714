-- Extends a lease its holder still has. KEYS[1]: the lease; ARGV[1]: holder, ARGV[2]: ms.
-- Returns 1 when renewed, 0 when the lease is no longer this holder's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
