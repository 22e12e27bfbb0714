-- Hands entries back (their scheduler stops, or lost the dispatch lease): each still in its
-- stream moves to the front class, to be read at once by the next holder.
-- KEYS[1]: the front stream, then the stream of each entry. ARGV[1]: the consumer group,
-- ARGV[2]: the field an entry's job is in; then per entry its id and its job.
local group, field = ARGV[1], ARGV[2]
for i = 2, #KEYS do
  local id, job = ARGV[i * 2 - 1], ARGV[i * 2]
  if #redis.call('XRANGE', KEYS[i], id, id) > 0 then
    redis.call('XADD', KEYS[1], '*', field, job)
    redis.call('XDEL', KEYS[i], id)
  end
  redis.call('XACK', KEYS[i], group, id)
end
return 1
