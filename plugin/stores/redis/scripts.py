"""The Lua scripts of the Redis store: each batch of receipts, send, completion batch and expiry
batch is one script, so it runs atomically on the server and costs one round trip.

Every script is declared with the Redis 7 ``#!lua`` shebang. Without ``no-writes`` and
``allow-oom``, Redis refuses the receipt and send scripts *before they run* when it is over
``maxmemory`` (an ``OOM`` error the store turns into ``StoreUnavailable``): nothing is half
applied, and the store cannot grow past ``maxmemory``. Expiry and completion only release records
(a record and its index entry become one 16-character tombstone), so they declare ``allow-oom``:
they are what makes room again. The views script declares ``no-writes``.

Keys: every script gets the fixed keys of :data:`KEY_SUFFIXES` (the key base ``{prefix}`` first:
a hash tag, so every key, the per-message and per-session ones the scripts derive from it too,
lives in one cluster slot and no script needs ``allow-cross-slot-keys``). ``ARGV[1..4]`` = now,
ack window (seconds), max_tracked_messages, how many expired records it may release on the way.
Periods and session ids are computed in Python. Floats travel as strings (Redis truncates Lua
numbers in replies to integers).

Nothing core defines is typed here by hand: the ladder (transition table, open statuses, the
failed status), the outcome codes, the counter names and the error-code cap are generated from
:mod:`plugin.core`. Every writing script first checks the layout marker (``{prefix}:format``):
when it is gone, Redis lost its data (restarted without persistence); the script writes it again
and its reply says so (the first field), so the store logs and counts it once.
"""

from __future__ import annotations

from plugin.core.manager import _OPEN, _TRANSITIONS
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, Outcome, Status
from plugin.core.session import MAX_ERROR_CODES

__all__ = [
    "COMPLETE",
    "EXPIRE",
    "KEY_SUFFIXES",
    "LAYOUT_VERSION",
    "RECEIPT",
    "RECEIPT_FIELDS",
    "SCORE_SCALE",
    "TRACK",
    "VIEWS",
]

#: The version of the key layout, stored in ``{prefix}:format`` (checked at connect).
#: 1: raw ids in tombstones (no format key); 2: tombstones are digests, ids carry no number.
LAYOUT_VERSION = 2
#: The fixed keys every script declares (``KEYS[i]`` = base + suffix), in this order.
KEY_SUFFIXES = ("", ":meta", ":sessions", ":due", ":tombs", ":history", ":format")
#: A send-order score: ``offset * SCORE_SCALE + seq`` (send order within a second).
SCORE_SCALE = 1 << 32
#: Arguments per receipt in a RECEIPT batch.
RECEIPT_FIELDS = 12

_OUTCOME_INDEX = {outcome: index for index, outcome in enumerate(Outcome)}


def _lua_strings(names: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{name}'" for name in names) + "}"


def _lua_transitions() -> str:
    rows = []
    for outcome, new, deltas in _TRANSITIONS:
        flat = ", ".join(f"{index}, {delta}" for index, delta in deltas)
        rows.append(f"{{{outcome}, {new}, {{{flat}}}}}")
    return "{" + ", ".join(rows) + "}"


_CONSTANTS = {
    "@COUNTERS@": _lua_strings(COUNTER_KEYS),
    "@OUTCOMES@": _lua_strings(OUTCOME_KEYS),
    "@TRANSITIONS@": _lua_transitions(),
    "@OPEN@": "{" + ", ".join(f"[{status}] = true" for status in sorted(_OPEN)) + "}",
    "@NSTATUS@": str(len(Status)),
    "@QUEUED@": str(int(Status.QUEUED)),
    "@FAILED@": str(int(Status.FAILED)),
    "@APPLIED@": str(_OUTCOME_INDEX[Outcome.APPLIED]),
    "@LATE@": str(_OUTCOME_INDEX[Outcome.LATE]),
    "@UNKNOWN@": str(_OUTCOME_INDEX[Outcome.UNKNOWN]),
    "@ADOPTED@": str(_OUTCOME_INDEX[Outcome.ADOPTED]),
    "@MAX_ERROR_CODES@": str(MAX_ERROR_CODES),
    "@SCALE@": str(SCORE_SCALE),
    "@LAYOUT@": str(LAYOUT_VERSION),
    "@RF@": str(RECEIPT_FIELDS),
}


def _generate(text: str) -> str:
    for name, value in _CONSTANTS.items():
        text = text.replace(name, value)
    if "@" in text.replace("'@'", ""):
        raise AssertionError("a placeholder of the Redis scripts has no value")
    return text


_PRELUDE = """
local B, META, SESSIONS, DUE, TOMBS, HISTORY, FORMAT = unpack(KEYS, 1, 7)
local NOW_S = ARGV[1]
local NOW = tonumber(ARGV[1])
local WINDOW = tonumber(ARGV[2])
local CAP = tonumber(ARGV[3])
local BUDGET = tonumber(ARGV[4])
local SCALE = @SCALE@
local NSTATUS, QUEUED, FAILED, OPEN = @NSTATUS@, @QUEUED@, @FAILED@, @OPEN@
local APPLIED, LATE, UNKNOWN, ADOPTED = @APPLIED@, @LATE@, @UNKNOWN@, @ADOPTED@
local MAX_ERROR_CODES = @MAX_ERROR_CODES@
local COUNTERS = @COUNTERS@
local OUTCOMES = @OUTCOMES@
local T = @TRANSITIONS@

-- 1 when the layout marker was gone (Redis lost its data): it is written again.
local function marker()
  if redis.call('EXISTS', FORMAT) == 1 then return 0 end
  redis.call('SET', FORMAT, '@LAYOUT@')
  return 1
end

local function skey(sid) return B .. ':s:' .. sid end
local function okey(sid) return B .. ':o:' .. sid end
local function mkey(id) return B .. ':m:' .. id end
-- A released id is remembered as a digest, never as the id itself.
local function tomb(id) return string.sub(redis.sha1hex(id), 1, 16) end
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
  if redis.call('ZADD', TOMBS, 'NX', NOW_S, tomb(id)) == 1 then
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
  if OPEN[st] then
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

local function append(head, out)
  for i = 1, #out do head[#head + 1] = out[i] end
  return head
end
"""

_SESSIONS = """
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
      if st and OPEN[tonumber(st)] and redis.call('EXISTS', sk) == 1 then
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
    redis.call('HSET', mk, 's', sid, 'st', QUEUED, 't', sent_s, 'r', r)
  else
    redis.call('HSET', mk, 's', sid, 'st', QUEUED, 't', sent_s)
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
  local row = T[cur * NSTATUS + new + 1]
  if row[1] ~= APPLIED then return row[1], cur end
  redis.call('HSET', mkey(id), 'st', row[2])
  local deltas = row[3]
  for i = 1, #deltas, 2 do
    redis.call('HINCRBY', sk, COUNTERS[deltas[i] + 1], deltas[i + 1])
  end
  if row[2] == FAILED then count_error(sk, code) end
  return APPLIED, row[2]
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

"""

_PROGRAM = _PRELUDE + _SESSIONS

#: Receipt fields at ARGV[a..a+11]: id ('' when invalid), status, raw timestamp ('' when none),
#: effective timestamp, then the period of the effective timestamp: session id, start, end,
#: complete_at, offset, sent_at; recipient field, error code. Returns outcome, session id, old
#: status, new status, sent_at, recipient.
_ONE_RECEIPT = """
local function receipt(a, adopt, out)
  local id, status, ts = ARGV[a], tonumber(ARGV[a + 1]), ARGV[a + 2]
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
          count(LATE, sk)
          return LATE, sid, '', '', '', ''
        end
        local outcome, new = apply(sk, id, cur, status, ARGV[a + 11])
        count(outcome, sk)
        return outcome, sid, cur, new, rec[3], rec[4] or ''
      end
    end
  end
  local late = tonumber(ARGV[a + 3]) + WINDOW <= NOW
  if not late and id ~= '' and redis.call('ZSCORE', TOMBS, tomb(id)) then late = true end
  local sid = ARGV[a + 4]
  if late or not adopt then
    local outcome = UNKNOWN
    if late then outcome = LATE end
    local sk = skey(sid)
    local ca = redis.call('HGET', sk, 'complete_at')
    if ca and tonumber(ca) > NOW then count(outcome, sk) else count(outcome) end
    return outcome, '', '', '', '', ''
  end
  if id == '' then
    count(UNKNOWN)
    return UNKNOWN, '', '', '', '', ''
  end
  local sk = open_session(sid, ARGV[a + 5], ARGV[a + 6], ARGV[a + 7])
  if not sk then
    count(LATE)
    return LATE, '', '', '', '', ''
  end
  insert(sk, sid, id, tonumber(ARGV[a + 8]), ARGV[a + 9], ARGV[a + 10])
  local _, new = apply(sk, id, QUEUED, status, ARGV[a + 11])
  count(ADOPTED, sk)
  return ADOPTED, sid, '', new, ARGV[a + 9], ARGV[a + 10]
end
"""

#: A batch of receipts, applied in order, each atomically with the same outcome it would get
#: alone. ARGV[5] = track_unknown_receipts (1/0), ARGV[6] = n, then RECEIPT_FIELDS per receipt.
#: Reply: data lost (1/0), next due, then (outcome, session id, old status, new status,
#: sent_at, recipient) per receipt, then (id, session id, status, recipient, sent_at, reason)
#: per record released on the way.
RECEIPT = _generate("#!lua" + _PROGRAM + _ONE_RECEIPT + """
local out = {}
local head = {marker(), ''}
expire(BUDGET, out)
local adopt = ARGV[5] == '1'
for i = 0, tonumber(ARGV[6]) - 1 do
  local o, sid, old, new, t, r = receipt(7 + i * @RF@, adopt, out)
  local n = #head
  head[n + 1], head[n + 2], head[n + 3] = o, sid, old
  head[n + 4], head[n + 5], head[n + 6] = new, t, r
end
head[2] = next_due()
return append(head, out)
""")

#: ARGV[5..]: id, session id, start, end, complete_at, offset, sent_at, recipient field.
#: Reply: data lost (1/0), next due, 1 tracked / 0 not, then released records as in RECEIPT.
TRACK = _generate("#!lua" + _PROGRAM + """
local out = {}
local lost = marker()
expire(BUDGET, out)
local id, sid = ARGV[5], ARGV[6]
local rec = redis.call('HMGET', mkey(id), 's', 'st', 't', 'r')
if rec[1] then
  local ca = redis.call('HGET', skey(rec[1]), 'complete_at')
  if ca and tonumber(ca) > NOW then return append({lost, next_due(), 0}, out) end
  release(id, rec[1], tonumber(rec[2]), rec[3], rec[4], due_reason(tonumber(rec[3]), ca), out)
end
local sk = open_session(sid, ARGV[7], ARGV[8], ARGV[9])
if not sk then return append({lost, next_due(), 0}, out) end
insert(sk, sid, id, tonumber(ARGV[10]), ARGV[11], ARGV[12])
return append({lost, next_due(), 1}, out)
""")

#: One cleanup batch: release up to BUDGET expired records, drop old tombstones; ARGV[5] = 1
#: records ``last_cleanup``. In a session due to complete, only the windows that ended before
#: its completion expire here. Reply: data lost, released, tombstones dropped, then released
#: records as in RECEIPT.
EXPIRE = _generate("#!lua flags=allow-oom" + _PRELUDE + """
local out = {}
local lost = marker()
local released, dropped = expire(BUDGET, out)
if ARGV[5] == '1' then redis.call('HSET', META, 'last_cleanup', NOW_S) end
return append({lost, released, dropped}, out)
""")

#: ARGV[5..]: session id, history limit. Releases up to BUDGET records of a due session; when
#: none are left, moves its summary to history and deletes it, all in this one call.
#: Reply: data lost, state ('more', 'done', 'gone', 'notdue'), released, history trimmed,
#: summary JSON, then released records as in RECEIPT.
COMPLETE = _generate("#!lua flags=allow-oom" + _PRELUDE + """
local sid, limit = ARGV[5], tonumber(ARGV[6])
local sk = skey(sid)
local out = {}
local lost = marker()
local ca = redis.call('HGET', sk, 'complete_at')
if ca and tonumber(ca) > NOW then return {lost, 'notdue', 0, 0, ''} end
local ids = redis.call('ZRANGE', okey(sid), 0, BUDGET - 1)
for _, id in ipairs(ids) do
  local rec = redis.call('HMGET', mkey(id), 'st', 't', 'r')
  if rec[1] then
    release(id, sid, tonumber(rec[1]), rec[2], rec[3], 'session', out)
  else
    forget(id, sid)
  end
end
if #ids >= BUDGET then return append({lost, 'more', #ids, 0, ''}, out) end
redis.call('ZREM', SESSIONS, sid)
redis.call('ZREM', DUE, sid)
redis.call('DEL', okey(sid))
if not ca then return append({lost, 'gone', #ids, 0, ''}, out) end
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
return append({lost, 'done', #ids, trimmed, summary}, out)
""")

#: Everything the views show, read atomically: JSON.
VIEWS = """#!lua flags=no-writes
local B, META, SESSIONS, HISTORY, TOMBS = KEYS[1], KEYS[2], KEYS[3], KEYS[6], KEYS[5]
local res = {sessions = {}}
for _, sid in ipairs(redis.call('ZRANGE', SESSIONS, 0, -1)) do
  local h = redis.call('HGETALL', B .. ':s:' .. sid)
  if #h > 0 then
    res.sessions[#res.sessions + 1] = {h, redis.call('ZCARD', B .. ':o:' .. sid)}
  end
end
res.meta = redis.call('HGETALL', META)
res.history = redis.call('LRANGE', HISTORY, 0, -1)
res.tombstones = redis.call('ZCARD', TOMBS)
res.format = redis.call('GET', KEYS[7])
return cjson.encode(res)
"""
