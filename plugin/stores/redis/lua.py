"""The Lua source shared by the Redis store's scripts, with ``@NAME@`` placeholders that
:mod:`plugin.stores.redis.scripts` fills from :mod:`plugin.core` (nothing core defines is typed
here by hand).

``PRELUDE``: the keys and header arguments, the layout marker, tombstones, release and expiry
(what every writing script needs). ``SESSIONS``: sessions, insertion, eviction, the ladder.
``ONE_RECEIPT``: one receipt of a batch.
"""

from __future__ import annotations

__all__ = ["ONE_RECEIPT", "PRELUDE", "SESSIONS"]

PRELUDE = """
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
local MARKS = @MARKS@
local INV_LOG, MAX_BUCKET, OTHER_TAG = @INV_LOG@, @MAX_BUCKET@, @OTHER_TAG@

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

-- A pending record leaves: `counter` (expired or evicted) instead of pending, in its session's
-- funnel and its tag's (`g`, the record's tag index, when it has one).
local function drop_pending(sk, g, counter)
  if redis.call('EXISTS', sk) == 0 then return end
  redis.call('HINCRBY', sk, 'pending', -1)
  redis.call('HINCRBY', sk, counter, 1)
  if g then
    redis.call('HINCRBY', sk, 'g:' .. g .. ':pending', -1)
    redis.call('HINCRBY', sk, 'g:' .. g .. ':' .. counter, 1)
  end
end

-- Drop one record; a still-pending one counts as expired and is announced through `out`.
local function release(id, sid, st, t, r, reason, out)
  local g = nil
  if OPEN[st] then g = redis.call('HGET', mkey(id), 'g') end
  redis.call('DEL', mkey(id))
  redis.call('ZREM', okey(sid), id)
  redis.call('HINCRBY', META, 'tracked', -1)
  if OPEN[st] then
    drop_pending(skey(sid), g, 'expired')
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

-- A completed session's latency histograms, added to the totals since start (META `L…`).
local function add_latency(fields)
  for i = 1, #fields, 2 do
    local f = fields[i]
    local kind = string.sub(f, 1, 3)
    if kind == 'ld:' or kind == 'lr:' then
      redis.call('HINCRBY', META, 'L' .. string.sub(f, 2), fields[i + 1])
    elseif f == 'ls:d' or f == 'ls:r' then
      redis.call('HINCRBYFLOAT', META, 'L' .. string.sub(f, 2), fields[i + 1])
    end
  end
end

local function append(head, out)
  for i = 1, #out do head[#head + 1] = out[i] end
  return head
end
"""

SESSIONS = """
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

-- Drop the oldest record: the front of the oldest session's send order. A pending one counts
-- as evicted and is announced through `out`, like an expiry (reason 'evicted').
local function evict_one(out)
  for _, sid in ipairs(redis.call('ZRANGE', SESSIONS, 0, -1)) do
    local first = redis.call('ZRANGE', okey(sid), 0, 0)[1]
    if first then
      local rec = redis.call('HMGET', mkey(first), 'st', 'g', 't', 'r')
      redis.call('DEL', mkey(first))
      redis.call('ZREM', okey(sid), first)
      redis.call('HINCRBY', META, 'tracked', -1)
      redis.call('HINCRBY', META, 'evicted_total', 1)
      if rec[1] and OPEN[tonumber(rec[1])] then
        drop_pending(skey(sid), rec[2], 'evicted')
        local n = #out
        out[n + 1], out[n + 2], out[n + 3] = first, sid, tonumber(rec[1])
        out[n + 4], out[n + 5], out[n + 6] = rec[4] or '', rec[3], 'evicted'
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

-- The index of tag `name` in session `sk`: a new one while fewer than `limit` are named, else
-- the "other" index.
local function tag_of(sk, name, limit)
  local index = redis.call('HGET', sk, 'gi:' .. name)
  if index then return index end
  local named = tonumber(redis.call('HGET', sk, 'ntag') or '0')
  if named >= limit then return tostring(OTHER_TAG) end
  index = tostring(redis.call('HINCRBY', sk, 'ntag', 1))
  redis.call('HSET', sk, 'gi:' .. name, index, 'gn:' .. index, name)
  return index
end

local function insert(sk, sid, id, offset, sent_s, r, g, nosend, out)
  local tracked = tonumber(redis.call('HGET', META, 'tracked') or '0')
  while tracked >= CAP do
    if not evict_one(out) then
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
  local fields = {'s', sid, 'st', QUEUED, 't', sent_s}
  if r ~= '' then fields[#fields + 1] = 'r'; fields[#fields + 1] = r end
  if g then fields[#fields + 1] = 'g'; fields[#fields + 1] = g end
  if nosend then fields[#fields + 1] = 'n'; fields[#fields + 1] = 1 end
  redis.call('HSET', mk, unpack(fields))
  redis.call('PEXPIRE', mk, ms(tonumber(sent_s) + 2 * WINDOW - NOW))
  peak('peak_tracked', redis.call('HINCRBY', META, 'tracked', 1))
  redis.call('HINCRBY', sk, 'sent', 1)
  redis.call('HINCRBY', sk, 'pending', 1)
  if g then
    redis.call('HINCRBY', sk, 'g:' .. g .. ':sent', 1)
    redis.call('HINCRBY', sk, 'g:' .. g .. ':pending', 1)
  end
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

-- The latency of a message that became delivered (mark 1) and/or read (mark 2): seconds from
-- its send time `t` to the receipt's time `at`, into the session's histograms (as the core's
-- plugin.core.latency buckets them).
local function observe(sk, marks, seconds)
  local bucket = 0
  if seconds >= 1 then
    bucket = 1 + math.floor(math.log(seconds) * INV_LOG)
    if bucket > MAX_BUCKET then bucket = MAX_BUCKET end
  end
  if seconds < 0 then seconds = 0 end
  if marks % 2 == 1 then
    redis.call('HINCRBY', sk, 'ld:' .. bucket, 1)
    redis.call('HINCRBYFLOAT', sk, 'ls:d', seconds)
  end
  if marks >= 2 then
    redis.call('HINCRBY', sk, 'lr:' .. bucket, 1)
    redis.call('HINCRBYFLOAT', sk, 'ls:r', seconds)
  end
end

-- Apply a receipt of status `new` to record `id` at `cur`: (outcome, resulting status). `rec`:
-- the record's send time, tag and no-send-time flag, and the receipt's time (nil: adopted).
local function apply(sk, id, cur, new, code, rec)
  local row = T[cur * NSTATUS + new + 1]
  if row[1] ~= APPLIED then return row[1], cur end
  redis.call('HSET', mkey(id), 'st', row[2])
  local deltas = row[3]
  for i = 1, #deltas, 2 do
    redis.call('HINCRBY', sk, COUNTERS[deltas[i] + 1], deltas[i + 1])
  end
  if rec then
    local t, g, nosend, at = rec[1], rec[2], rec[3], rec[4]
    if g then
      for i = 1, #deltas, 2 do
        redis.call('HINCRBY', sk, 'g:' .. g .. ':' .. COUNTERS[deltas[i] + 1], deltas[i + 1])
      end
    end
    local marks = MARKS[cur * NSTATUS + new + 1]
    if marks > 0 and not nosend then observe(sk, marks, at - t) end
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

#: A receipt is one argument, its fields joined by the unit separator (0x1F), which no field
#: holds: fewer arguments for the client to encode and Redis to parse. Fields: id ('' when
#: invalid), status, raw timestamp ('' when none),
#: effective timestamp, then the period of the effective timestamp: session id, start, end,
#: complete_at, offset, sent_at; recipient field, error code. Returns outcome, session id, old
#: status, new status, sent_at, recipient.
ONE_RECEIPT = """
local function fields(s)
  local f, n, p = {}, 0, 1
  while true do
    local q = string.find(s, '\\31', p, true)
    n = n + 1
    if not q then
      f[n] = string.sub(s, p)
      return f
    end
    f[n] = string.sub(s, p, q - 1)
    p = q + 1
  end
end

local function receipt(F, adopt, out)
  local id, status, ts = F[1], tonumber(F[2]), F[3]
  if id ~= '' then
    local rec = redis.call('HMGET', mkey(id), 's', 'st', 't', 'r', 'g', 'n')
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
        local at = NOW
        if ts ~= '' then at = tonumber(ts) end
        local outcome, new = apply(sk, id, cur, status, F[12], {t, rec[5], rec[6], at})
        count(outcome, sk)
        return outcome, sid, cur, new, rec[3], rec[4] or ''
      end
    end
  end
  local late = tonumber(F[4]) + WINDOW <= NOW
  if not late and id ~= '' and redis.call('ZSCORE', TOMBS, tomb(id)) then late = true end
  local sid = F[5]
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
  local sk = open_session(sid, F[6], F[7], F[8])
  if not sk then
    count(LATE)
    return LATE, '', '', '', '', ''
  end
  -- adopted past "sent": its send time is not known (no latency for it)
  insert(sk, sid, id, tonumber(F[9]), F[10], F[11], nil, status > QUEUED + 1,
         out)
  local _, new = apply(sk, id, QUEUED, status, F[12], nil)
  count(ADOPTED, sk)
  return ADOPTED, sid, '', new, F[10], F[11]
end
"""
