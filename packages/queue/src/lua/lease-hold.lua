-- Renews a lease this holder has, else takes it when it is free.
-- KEYS[1]: the lease; ARGV[1]: holder, ARGV[2]: ms. Returns 1 when held now, else 0.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then
  return 1
end
return 0
