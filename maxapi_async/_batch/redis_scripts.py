"""The Lua scripts behind :mod:`.redis_store`: each state change of an item is one script.

Redis runs a script atomically, so a claim, a budget reservation or a settlement is
never interleaved with another worker's. Every script reads and writes only the keys it
is given, all under one hash tag (``maxapi:{<batch>}:...``), so the store works on a
Redis Cluster too. Amounts are whole nano-credits (integers; ``HINCRBY``). A missing
field reads as ``false`` in Lua; scripts return it as a nil reply.

Keys: ``item`` (a hash: ``status``, ``attempt``, ``idem``, ``task``, ``record``,
``estimate``), ``lease`` (a string holding the owner's token, with a TTL), ``meta`` (a
hash: the counts, ``committed``, ``spent``, ``budget_stop``), ``failed`` (a set of the
failed items' keys, for retrying them).
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "DONE",
    "FAILED",
    "POLL_DEPART",
    "POLL_RESERVE",
    "RELEASE",
    "RENEW",
    "RESERVE",
    "RETRY",
    "SUBMITTED",
    "SUBMITTING",
]

# Take the lease when it is free or ours (renewing it); false when another owner has it.
_HOLD = """
local function hold(lease, owner, ms)
  local holder = redis.call('GET', lease)
  if holder and holder ~= owner then return false end
  redis.call('SET', lease, owner, 'PX', ms)
  return true
end
"""

#: KEYS item, lease, meta; ARGV owner, lease_ms.
#: -> {'final', status, attempt, idem, task, record} | {'held', pttl} | {'claimed', status, ...}
CLAIM = """
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'idem', 'task', 'record')
if f[1] == 'done' or f[1] == 'failed' then
  return {'final', f[1], f[2], f[3], f[4], f[5]}
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return {'held', redis.call('PTTL', KEYS[2])}
end
if not holder and (f[1] == 'reserved' or f[1] == 'submitting' or f[1] == 'submitted') then
  redis.call('HINCRBY', KEYS[3], 'resumed', 1)  -- its worker died, or stopped before the end
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {'claimed', f[1] or 'new', f[2], f[3], f[4], f[5]}
"""

#: KEYS item, lease, meta; ARGV owner, lease_ms, estimate ('' = no price), budget ('' = none).
#: -> 'ok' | 'budget' | 'held' | 'finished'
RESERVE = (
    _HOLD
    + """
if not hold(KEYS[2], ARGV[1], ARGV[2]) then return 'held' end
local status = redis.call('HGET', KEYS[1], 'status') or 'new'
if status == 'done' or status == 'failed' then return 'finished' end
if redis.call('HEXISTS', KEYS[1], 'estimate') == 1 then return 'ok' end
local estimate = tonumber(ARGV[3])
if status ~= 'submitted' and ARGV[4] ~= '' then
  local committed = tonumber(redis.call('HGET', KEYS[3], 'committed') or '0')
  if redis.call('HGET', KEYS[3], 'budget_stop') == ARGV[4]
      or committed + (estimate or 0) > tonumber(ARGV[4]) then
    redis.call('HSET', KEYS[3], 'budget_stop', ARGV[4])
    if status ~= 'skipped' then
      redis.call('HSET', KEYS[1], 'status', 'skipped')
      redis.call('HINCRBY', KEYS[3], 'skipped', 1)
    end
    return 'budget'
  end
end
if estimate then
  redis.call('HINCRBY', KEYS[3], 'committed', estimate)
  redis.call('HSET', KEYS[1], 'estimate', estimate)
end
if status == 'skipped' then redis.call('HINCRBY', KEYS[3], 'skipped', -1) end
if status == 'new' or status == 'skipped' then redis.call('HSET', KEYS[1], 'status', 'reserved') end
return 'ok'
"""
)

#: KEYS item, lease, meta; ARGV owner, lease_ms, the key a fresh submission takes.
#: -> {'send', key} | {'held'} | {'state', status}
SUBMITTING = (
    _HOLD
    + """
if not hold(KEYS[2], ARGV[1], ARGV[2]) then return {'held'} end
local f = redis.call('HMGET', KEYS[1], 'status', 'idem')
local status = f[1] or 'new'
if status == 'submitting' and f[2] then
  redis.call('HINCRBY', KEYS[3], 'resubmitted', 1)
  return {'send', f[2]}
end
if status == 'new' or status == 'reserved' or status == 'skipped' then
  redis.call('HSET', KEYS[1], 'status', 'submitting', 'idem', ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'submitted', 1)
  return {'send', ARGV[3]}
end
return {'state', status}
"""
)

#: KEYS item; ARGV idempotency key, task json. A fact, recorded whoever holds the lease now.
#: -> 1 recorded | 0 the item has moved on
SUBMITTED = """
local f = redis.call('HMGET', KEYS[1], 'status', 'idem')
if f[2] ~= ARGV[1] or (f[1] ~= 'submitting' and f[1] ~= 'submitted') then return 0 end
redis.call('HSET', KEYS[1], 'status', 'submitted', 'task', ARGV[2])
return 1
"""

#: KEYS item, lease, meta; ARGV owner, record json, cost ('' = no price).
#: -> 1 recorded | 0 already done (by another worker)
DONE = """
local status = redis.call('HGET', KEYS[1], 'status')
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if status == 'done' then return 0 end
local estimate = tonumber(redis.call('HGET', KEYS[1], 'estimate') or '0')
local cost = tonumber(ARGV[3])
redis.call('HINCRBY', KEYS[3], 'committed', (cost or 0) - estimate)
if cost then redis.call('HINCRBY', KEYS[3], 'spent', cost) end
if status == 'failed' then redis.call('HINCRBY', KEYS[3], 'failed', -1) end
redis.call('HDEL', KEYS[1], 'estimate')
redis.call('HSET', KEYS[1], 'status', 'done', 'record', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'done', 1)
return 1
"""

#: KEYS item, lease, meta, failed; ARGV owner, record json, '1' to keep the reservation, item key.
#: -> 1 recorded | 0 finished already, or another worker took the item over
FAILED = """
local status = redis.call('HGET', KEYS[1], 'status')
local holder = redis.call('GET', KEYS[2])
if holder == ARGV[1] then redis.call('DEL', KEYS[2]) elseif holder then return 0 end
if status == 'done' or status == 'failed' then return 0 end
if ARGV[3] ~= '1' then
  local estimate = tonumber(redis.call('HGET', KEYS[1], 'estimate') or '0')
  redis.call('HINCRBY', KEYS[3], 'committed', -estimate)
  redis.call('HDEL', KEYS[1], 'estimate')
end
redis.call('HSET', KEYS[1], 'status', 'failed', 'record', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'failed', 1)
redis.call('SADD', KEYS[4], ARGV[4])
return 1
"""

#: KEYS item, meta, failed; ARGV status, idem ('' = none), '1' for a new attempt, item key.
#: -> 1 reset | 0 no longer failed
RETRY = """
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then
  redis.call('SREM', KEYS[3], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
redis.call('HDEL', KEYS[1], 'record')
if ARGV[2] == '' then redis.call('HDEL', KEYS[1], 'idem') end
if ARGV[1] ~= 'submitted' then redis.call('HDEL', KEYS[1], 'task') end
if ARGV[3] == '1' then redis.call('HINCRBY', KEYS[1], 'attempt', 1) end
redis.call('HINCRBY', KEYS[2], 'failed', -1)
redis.call('SREM', KEYS[3], ARGV[4])
return 1
"""

#: KEYS lease; ARGV owner. -> 1 released | 0 not ours
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: KEYS the leases held; ARGV owner, lease_ms. -> the indexes (1-based) of the leases lost
RENEW = """
local lost = {}
for i, lease in ipairs(KEYS) do
  if redis.call('GET', lease) == ARGV[1] then
    redis.call('PEXPIRE', lease, ARGV[2])
  else
    table.insert(lost, i)
  end
end
return lost
"""

# The shared poll budget, in two steps per poll, both on Redis's clock (one clock for all
# workers). At most SHARE = floor(0.99 rate) polls leave in any WINDOW = 1.05 s: the 1 %
# (as in the client's own gate) because the service counts arrivals on its own clock, and
# the 50 ms because workers on other machines reach it with delays that differ: up to 50 ms
# apart, it still never sees more than SHARE polls in any one second.
_POLL_TERMS = """
local share = math.max(1, math.floor(tonumber(ARGV[1]) * 0.99))
local window = 1.05
"""

#: Book the next slot, WINDOW / SHARE after the last one booked (a token bucket with a
#: burst of one); the caller sleeps until it. KEYS tat; ARGV rate.
#: -> the seconds to wait, as a string
POLL_RESERVE = (
    _POLL_TERMS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = window / share
local slot = math.max(now, tonumber(redis.call('GET', KEYS[1]) or '0'))
redis.call('SET', KEYS[1], string.format('%.6f', slot + interval),
  'PX', math.ceil((slot + interval - now) * 1000) + 1000)
return string.format('%.6f', slot - now)
"""
)

#: Depart, unless the past WINDOW already holds SHARE departures (sleepers wake late and
#: together on a busy machine). KEYS log; ARGV rate, a unique member.
#: -> '0' departed | the seconds to wait before asking again, as a string
POLL_DEPART = (
    _POLL_TERMS
    + """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.6f', now - window))
if redis.call('ZCARD', KEYS[1]) >= share then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return string.format('%.6f', math.max(0.001, tonumber(oldest[2]) + window - now))
end
redis.call('ZADD', KEYS[1], string.format('%.6f', now), ARGV[2])
redis.call('PEXPIRE', KEYS[1], 2000)
return '0'
"""
)
