"""The Lua scripts of the Redis store: each receipt, send, completion batch and expiry batch is
one script, so it runs atomically on the server and costs one round trip.

Every script gets ``KEYS[1]`` = the key base ``{prefix}`` (a hash tag: all keys share one cluster
slot) and the header ``ARGV[1..4]`` = now, ack window (seconds), max_tracked_messages, how many
expired records it may release on the way. Periods and session ids are computed in Python.
Floats travel as strings (Redis truncates Lua numbers in replies to integers).

The ladder is not written twice: the transition table is generated from :mod:`plugin.core.ladder`.
"""

from __future__ import annotations

from plugin.core.ladder import TRANSITIONS
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS
from plugin.core.records import MAX_ERROR_CODES

__all__ = [
    "COMPLETE",
    "EXPIRE",
    "RECEIPT",
    "TRACK",
    "VIEWS",
]


def _lua_strings(names: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{name}'" for name in names) + "}"


def _lua_transitions() -> str:
    rows = []
    for outcome, new, deltas in TRANSITIONS:
        flat = ", ".join(f"{index}, {delta}" for index, delta in deltas)
        rows.append(f"{{{outcome}, {new}, {{{flat}}}}}")
    return "{" + ", ".join(rows) + "}"


_PRELUDE = """
local B = KEYS[1]
local NOW_S = ARGV[1]
local NOW = tonumber(ARGV[1])
local WINDOW = tonumber(ARGV[2])
local CAP = tonumber(ARGV[3])
local BUDGET = tonumber(ARGV[4])
local META, SESSIONS, DUE = B .. ':meta', B .. ':sessions', B .. ':due'
local TOMBS, HISTORY = B .. ':tombs', B .. ':history'
local SCALE = 4294967296
local MAX_ERROR_CODES = @MAX_ERROR_CODES@
local COUNTERS = @COUNTERS@
local OUTCOMES = @OUTCOMES@
local T = @TRANSITIONS@

local function skey(sid) return B .. ':s:' .. sid end
local function okey(sid) return B .. ':o:' .. sid end
local function mkey(id) return B .. ':m:' .. id end
local function ms(seconds)
  local v = math.floor(seconds * 1000)
  if v < 1 then v = 1 end
  return v
end
local function int(x) return string.format('%.0f', x) end

local function peak(field, value)
  if value > tonumber(redis.call('HGET', META, field) or '0') then
    redis.call('HSET', META, field, value)
  end
end

local function bury(id)
  if redis.call('ZADD', TOMBS, 'NX', NOW_S, id) == 1 then
    local n = redis.call('ZCARD', TOMBS)
    if n > CAP then redis.call('ZPOPMIN', TOMBS, n - CAP) end
  end
  redis.call('PEXPIRE', TOMBS, ms(2 * WINDOW))
end

-- An index entry whose record is gone (its safety-net TTL fired before anyone counted it).
local function forget(id, sid)
  redis.call('ZREM', okey(sid), id)
  redis.call('HINCRBY', META, 'tracked', -1)
  redis.call('HINCRBY', META, 'lost', 1)
  bury(id)
end

-- Drop one record; a still-pending one counts as expired and is announced through `out`.
local function release(id, sid, st, t, r, reason, out)
  redis.call('DEL', mkey(id))
  redis.call('ZREM', okey(sid), id)
  redis.call('HINCRBY', META, 'tracked', -1)
  if st <= 1 then
    local sk = skey(sid)
    if redis.call('EXISTS', sk) == 1 then
      redis.call('HINCRBY', sk, 'pending', -1)
      redis.call('HINCRBY', sk, 'expired', 1)
    end
    local n = #out
    out[n + 1], out[n + 2], out[n + 3] = id, sid, st
    out[n + 4], out[n + 5], out[n + 6] = r or '', t, reason
  end
  bury(id)
end

-- Release records whose window is over (oldest session first, in send order), at most
-- `budget`; drop tombstones older than one window.
local function expire(budget, out)
  local released = 0
  local sids = redis.call('ZRANGE', SESSIONS, 0, -1, 'WITHSCORES')
  for i = 1, #sids, 2 do
    if released >= budget then break end
    local sid = sids[i]
    -- in a session due to complete, only windows that ended before its completion expire
    local ca = tonumber(redis.call('ZSCORE', DUE, sid) or NOW_S)
    local limit = math.floor(math.min(NOW, ca) - WINDOW - tonumber(sids[i + 1])) + 1
    if limit > 0 then
      local ids = redis.call('ZRANGEBYSCORE', okey(sid), '-inf', '(' .. int(limit * SCALE),
                             'LIMIT', 0, budget - released)
      for _, id in ipairs(ids) do
        local rec = redis.call('HMGET', mkey(id), 'st', 't', 'r')
        if rec[1] then
          release(id, sid, tonumber(rec[1]), rec[2], rec[3], 'window', out)
        else
          forget(id, sid)
        end
        released = released + 1
      end
    end
  end
  local dropped = redis.call('ZREMRANGEBYSCORE', TOMBS, '-inf', NOW - WINDOW)
  return released, dropped
end

-- The session hash of `sid`, created if needed; nil when it has completed (or is due).
local function open_session(sid, start_s, end_s, complete_s)
  local sk = skey(sid)
  local ca = redis.call('HGET', sk, 'complete_at')
  if ca then
    if tonumber(ca) <= NOW then return nil end
    return sk
  end
  if tonumber(complete_s) <= NOW then return nil end
  local fields = {'session_id', sid, 'start', start_s, 'end', end_s, 'complete_at', complete_s,
                  'nerr', 0}
  for _, name in ipairs(COUNTERS) do fields[#fields + 1] = name; fields[#fields + 1] = 0 end
  for _, name in ipairs(OUTCOMES) do
    fields[#fields + 1] = 'o:' .. name; fields[#fields + 1] = 0
  end
  redis.call('HSET', sk, unpack(fields))
  redis.call('PEXPIRE', sk, ms(tonumber(end_s) + 2 * WINDOW - NOW))
  redis.call('ZADD', SESSIONS, start_s, sid)
  redis.call('ZADD', DUE, complete_s, sid)
  peak('peak_sessions', redis.call('ZCARD', SESSIONS))
  return sk
end

-- Drop the oldest record: the front of the oldest session's send order.
local function evict_one()
  for _, sid in ipairs(redis.call('ZRANGE', SESSIONS, 0, -1)) do
    local first = redis.call('ZRANGE', okey(sid), 0, 0)[1]
    if first then
      local st = redis.call('HGET', mkey(first), 'st')
      redis.call('DEL', mkey(first))
      redis.call('ZREM', okey(sid), first)
      redis.call('HINCRBY', META, 'tracked', -1)
      redis.call('HINCRBY', META, 'evicted_total', 1)
      local sk = skey(sid)
      if st and tonumber(st) <= 1 and redis.call('EXISTS', sk) == 1 then
        redis.call('HINCRBY', sk, 'pending', -1)
        redis.call('HINCRBY', sk, 'evicted', 1)
      end
      bury(first)
      return true
    end
  end
  return false
end

-- The record count from the indexes, when the counter disagrees (records Redis dropped by TTL
-- together with their session's index were never counted down).
local function recount()
  local n = 0
  for _, sid in ipairs(redis.call('ZRANGE', SESSIONS, 0, -1)) do
    n = n + redis.call('ZCARD', okey(sid))
  end
  redis.call('HSET', META, 'tracked', n)
  return n
end

local function insert(sk, sid, id, offset, sent_s, r)
  local tracked = tonumber(redis.call('HGET', META, 'tracked') or '0')
  while tracked >= CAP do
    if not evict_one() then
      tracked = recount()
      break
    end
    tracked = tracked - 1
  end
  local seq = redis.call('HINCRBY', META, 'seq', 1) % SCALE
  local ok = okey(sid)
  redis.call('ZADD', ok, int(offset * SCALE + seq), id)
  local session_end = tonumber(redis.call('HGET', sk, 'end'))
  redis.call('PEXPIRE', ok, ms(session_end + 2 * WINDOW - NOW))
  local mk = mkey(id)
  if r ~= '' then
    redis.call('HSET', mk, 's', sid, 'st', 0, 't', sent_s, 'r', r)
  else
    redis.call('HSET', mk, 's', sid, 'st', 0, 't', sent_s)
  end
  redis.call('PEXPIRE', mk, ms(tonumber(sent_s) + 2 * WINDOW - NOW))
  peak('peak_tracked', redis.call('HINCRBY', META, 'tracked', 1))
  redis.call('HINCRBY', sk, 'sent', 1)
  redis.call('HINCRBY', sk, 'pending', 1)
end

local function count_error(sk, code)
  local key = code
  if key == '' then key = 'unknown' end
  local f = 'x:' .. key
  if redis.call('HEXISTS', sk, f) == 0 then
    if tonumber(redis.call('HGET', sk, 'nerr')) >= MAX_ERROR_CODES then f = 'x:other' end
    if redis.call('HEXISTS', sk, f) == 0 then redis.call('HINCRBY', sk, 'nerr', 1) end
  end
  redis.call('HINCRBY', sk, f, 1)
end

-- Apply a receipt of status `new` to record `id` at `cur`: (outcome, resulting status).
local function apply(sk, id, cur, new, code)
  local row = T[cur * 6 + new + 1]
  if row[1] ~= 0 then return row[1], cur end
  redis.call('HSET', mkey(id), 'st', row[2])
  local deltas = row[3]
  for i = 1, #deltas, 2 do
    redis.call('HINCRBY', sk, COUNTERS[deltas[i] + 1], deltas[i + 1])
  end
  if row[2] == 5 then count_error(sk, code) end
  return 0, row[2]
end

local function count(outcome, sk)
  local field = 'o:' .. OUTCOMES[outcome + 1]
  redis.call('HINCRBY', META, field, 1)
  if sk then redis.call('HINCRBY', sk, field, 1) end
end

local function next_due()
  return redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')[2] or ''
end

-- Why a record of a due session goes: its window ended before the completion, or not.
local function due_reason(t, ca)
  if ca and t + WINDOW <= tonumber(ca) then return 'window' end
  return 'session'
end

local function reply(head, out)
  for i = 1, #out do head[#head + 1] = out[i] end
  return head
end
""".replace("@COUNTERS@", _lua_strings(COUNTER_KEYS)).replace(
    "@OUTCOMES@", _lua_strings(OUTCOME_KEYS)
).replace("@TRANSITIONS@", _lua_transitions()).replace("@MAX_ERROR_CODES@", str(MAX_ERROR_CODES))

#: ARGV[5..]: id ('' when invalid), status, raw timestamp ('' when none), effective timestamp,
#: then the period of the effective timestamp: session id, start, end, complete_at, offset,
#: sent_at; recipient field, error code, track_unknown_receipts (1/0), id valid (1/0).
#: Reply: outcome, next due, session id, old status, new status, sent_at, recipient, then
#: (id, session id, status, recipient, sent_at, reason) per record released on the way.
RECEIPT = _PRELUDE + """
local out = {}
expire(BUDGET, out)
local id, status, ts = ARGV[5], tonumber(ARGV[6]), ARGV[7]
if id ~= '' then
  local rec = redis.call('HMGET', mkey(id), 's', 'st', 't', 'r')
  if rec[1] then
    local sid, cur, t = rec[1], tonumber(rec[2]), tonumber(rec[3])
    local sk = skey(sid)
    local ca = redis.call('HGET', sk, 'complete_at')
    if not ca or tonumber(ca) <= NOW then
      -- its session is due: completing it would release the record; what follows sees a
      -- tombstone, as the in-memory manager would after completing the session
      release(id, sid, cur, rec[3], rec[4], due_reason(t, ca), out)
    else
      if t + WINDOW <= NOW or (ts ~= '' and tonumber(ts) + WINDOW <= NOW) then
        if t + WINDOW <= NOW then release(id, sid, cur, rec[3], rec[4], 'window', out) end
        count(3, sk)
        return reply({3, next_due(), sid, '', '', '', ''}, out)
      end
      local outcome, new = apply(sk, id, cur, status, ARGV[16])
      count(outcome, sk)
      return reply({outcome, next_due(), sid, cur, new, rec[3], rec[4] or ''}, out)
    end
  end
end
local late = tonumber(ARGV[8]) + WINDOW <= NOW
if not late and id ~= '' and redis.call('ZSCORE', TOMBS, id) then late = true end
local sid = ARGV[9]
if late or ARGV[17] ~= '1' then
  local outcome = 4
  if late then outcome = 3 end
  local sk = skey(sid)
  local ca = redis.call('HGET', sk, 'complete_at')
  if ca and tonumber(ca) > NOW then count(outcome, sk) else count(outcome) end
  return reply({outcome, next_due(), '', '', '', '', ''}, out)
end
if ARGV[18] ~= '1' then
  count(4)
  return reply({4, next_due(), '', '', '', '', ''}, out)
end
local sk = open_session(sid, ARGV[10], ARGV[11], ARGV[12])
if not sk then
  count(3)
  return reply({3, next_due(), '', '', '', '', ''}, out)
end
insert(sk, sid, id, tonumber(ARGV[13]), ARGV[14], ARGV[15])
local _, new = apply(sk, id, 0, status, ARGV[16])
count(5, sk)
return reply({5, next_due(), sid, '', new, ARGV[14], ARGV[15]}, out)
"""

#: ARGV[5..]: id, session id, start, end, complete_at, offset, sent_at, recipient field.
#: Reply: 1 tracked / 0 not, next due, then released records as in RECEIPT.
TRACK = _PRELUDE + """
local out = {}
expire(BUDGET, out)
local id, sid = ARGV[5], ARGV[6]
local rec = redis.call('HMGET', mkey(id), 's', 'st', 't', 'r')
if rec[1] then
  local ca = redis.call('HGET', skey(rec[1]), 'complete_at')
  if ca and tonumber(ca) > NOW then return reply({0, next_due()}, out) end
  release(id, rec[1], tonumber(rec[2]), rec[3], rec[4], due_reason(tonumber(rec[3]), ca), out)
end
local sk = open_session(sid, ARGV[7], ARGV[8], ARGV[9])
if not sk then return reply({0, next_due()}, out) end
insert(sk, sid, id, tonumber(ARGV[10]), ARGV[11], ARGV[12])
return reply({1, next_due()}, out)
"""

#: One cleanup batch: release up to BUDGET expired records, drop old tombstones. In a session
#: due to complete, only the windows that ended before its completion expire here.
#: Reply: released, tombstones dropped, then released records as in RECEIPT.
EXPIRE = _PRELUDE + """
local out = {}
local released, dropped = expire(BUDGET, out)
return reply({released, dropped}, out)
"""

#: ARGV[5..]: session id, history limit. Releases up to BUDGET records of a due session; when
#: none are left, moves its summary to history and deletes it, all in this one call.
#: Reply: state ('more', 'done', 'gone', 'notdue'), released, history trimmed, summary JSON,
#: then released records as in RECEIPT.
COMPLETE = _PRELUDE + """
local sid, limit = ARGV[5], tonumber(ARGV[6])
local sk = skey(sid)
local out = {}
local ca = redis.call('HGET', sk, 'complete_at')
if ca and tonumber(ca) > NOW then return {'notdue', 0, 0, ''} end
local ids = redis.call('ZRANGE', okey(sid), 0, BUDGET - 1)
for _, id in ipairs(ids) do
  local rec = redis.call('HMGET', mkey(id), 'st', 't', 'r')
  if rec[1] then
    release(id, sid, tonumber(rec[1]), rec[2], rec[3], 'session', out)
  else
    forget(id, sid)
  end
end
if #ids >= BUDGET then return reply({'more', #ids, 0, ''}, out) end
redis.call('ZREM', SESSIONS, sid)
redis.call('ZREM', DUE, sid)
redis.call('DEL', okey(sid))
if not ca then return reply({'gone', #ids, 0, ''}, out) end
local h = redis.call('HGETALL', sk)
local fields = {completed_at = NOW_S}
for i = 1, #h, 2 do fields[h[i]] = h[i + 1] end
local summary = cjson.encode(fields)
local trimmed = 0
if limit > 0 then
  local n = redis.call('LPUSH', HISTORY, summary)
  if n > limit then
    redis.call('LTRIM', HISTORY, 0, limit - 1)
    trimmed = n - limit
    redis.call('HINCRBY', META, 'history_trimmed', trimmed)
  end
end
redis.call('DEL', sk)
return reply({'done', #ids, trimmed, summary}, out)
"""

#: Everything the views show, read atomically: JSON.
VIEWS = """
local B = KEYS[1]
local res = {sessions = {}}
for _, sid in ipairs(redis.call('ZRANGE', B .. ':sessions', 0, -1)) do
  local h = redis.call('HGETALL', B .. ':s:' .. sid)
  if #h > 0 then
    res.sessions[#res.sessions + 1] = {h, redis.call('ZCARD', B .. ':o:' .. sid)}
  end
end
res.meta = redis.call('HGETALL', B .. ':meta')
res.history = redis.call('LRANGE', B .. ':history', 0, -1)
res.tombstones = redis.call('ZCARD', B .. ':tombs')
return cjson.encode(res)
"""
