-- Takes entries off their streams and tells their gateways, in one round trip (a dispatch).
-- KEYS: the stream of each entry. ARGV[1]: the consumer group; then per entry its id, its
-- gateway's reply channel and the message for it.
-- An entry still in its stream is deleted and its message published (all messages for one
-- channel as one JSON array); one already gone (dispatched by another scheduler, withdrawn by
-- its gateway) is only acknowledged. So a request is dispatched once, whoever holds it.
-- Returns 1/0 per entry: taken or not.
local group = ARGV[1]
local out, byChannel, order = {}, {}, {}
for i = 1, #KEYS do
  local id, ch = ARGV[i * 3 - 1], ARGV[i * 3]
  local present = #redis.call('XRANGE', KEYS[i], id, id) > 0
  redis.call('XACK', KEYS[i], group, id)
  if present then
    redis.call('XDEL', KEYS[i], id)
    local list = byChannel[ch]
    if not list then
      list = {}
      byChannel[ch] = list
      order[#order + 1] = ch
    end
    list[#list + 1] = ARGV[i * 3 + 1]
    out[i] = 1
  else
    out[i] = 0
  end
end
for _, ch in ipairs(order) do
  redis.call('PUBLISH', ch, '[' .. table.concat(byChannel[ch], ',') .. ']')
end
return out
