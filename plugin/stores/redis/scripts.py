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

from plugin.core.ladder import (
    LATENCY_MARKS,
    O_ADOPTED,
    O_APPLIED,
    O_LATE,
    O_UNKNOWN,
    OPEN,
    TRANSITIONS,
)
from plugin.core.latency import INVERSE_LOG_RATIO, MAX_BUCKET
from plugin.core.model import COUNTER_KEYS, OUTCOME_KEYS, Status
from plugin.core.records import MAX_ERROR_CODES, OTHER_TAG
from plugin.stores.redis import lua

__all__ = [
    "COMPLETE",
    "EVENT_GROUP",
    "EXPIRE",
    "KEY_SUFFIXES",
    "LAYOUT_VERSION",
    "PRUNE_CONSUMERS",
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
KEY_SUFFIXES = ("", ":meta", ":sessions", ":due", ":tombs", ":history", ":format", ":events")
#: The consumer group that delivers the Stream of completed sessions (``{prefix}:events``).
EVENT_GROUP = "wa-sessions"
#: A send-order score: ``offset * SCORE_SCALE + seq`` (send order within a second).
SCORE_SCALE = 1 << 32
#: Fields per receipt in a RECEIPT batch (one argument, joined by the unit separator (0x1F)).
RECEIPT_FIELDS = 12


def _lua_strings(names: tuple[str, ...]) -> str:
    return "{" + ", ".join(f"'{name}'" for name in names) + "}"


def _lua_transitions() -> str:
    rows = []
    for outcome, new, deltas in TRANSITIONS:
        flat = ", ".join(f"{index}, {delta}" for index, delta in deltas)
        rows.append(f"{{{outcome}, {new}, {{{flat}}}}}")
    return "{" + ", ".join(rows) + "}"


_CONSTANTS = {
    "@COUNTERS@": _lua_strings(COUNTER_KEYS),
    "@OUTCOMES@": _lua_strings(OUTCOME_KEYS),
    "@TRANSITIONS@": _lua_transitions(),
    "@OPEN@": "{" + ", ".join(f"[{status}] = true" for status in sorted(OPEN)) + "}",
    "@NSTATUS@": str(len(Status)),
    "@QUEUED@": str(int(Status.QUEUED)),
    "@FAILED@": str(int(Status.FAILED)),
    "@APPLIED@": str(O_APPLIED),
    "@LATE@": str(O_LATE),
    "@UNKNOWN@": str(O_UNKNOWN),
    "@ADOPTED@": str(O_ADOPTED),
    "@MAX_ERROR_CODES@": str(MAX_ERROR_CODES),
    "@SCALE@": str(SCORE_SCALE),
    "@LAYOUT@": str(LAYOUT_VERSION),
    "@RF@": str(RECEIPT_FIELDS),
    "@MARKS@": "{" + ", ".join(str(mark) for mark in LATENCY_MARKS) + "}",
    "@INV_LOG@": repr(INVERSE_LOG_RATIO),
    "@MAX_BUCKET@": str(MAX_BUCKET),
    "@OTHER_TAG@": str(OTHER_TAG),
    "@GROUP@": f"'{EVENT_GROUP}'",
}


def _generate(text: str) -> str:
    for name, value in _CONSTANTS.items():
        text = text.replace(name, value)
    if "@" in text.replace("'@'", ""):
        raise AssertionError("a placeholder of the Redis scripts has no value")
    return text


_PRELUDE = lua.PRELUDE
_PROGRAM = lua.PRELUDE + lua.SESSIONS

#: A batch of receipts, applied in order, each atomically with the same outcome it would get
#: alone. ARGV[5] = track_unknown_receipts (1/0), ARGV[6] = n, then one argument per receipt:
#: its RECEIPT_FIELDS fields joined by the unit separator (0x1F) (see
#: :data:`plugin.stores.redis.lua.ONE_RECEIPT`).
#: Reply: data lost (1/0), next due, then (outcome, session id, old status, new status,
#: sent_at, recipient) per receipt, then (id, session id, status, recipient, sent_at, reason)
#: per record released on the way.
RECEIPT = _generate(
    "#!lua"
    + _PROGRAM
    + lua.ONE_RECEIPT
    + """
local out = {}
local head = {marker(), ''}
expire(BUDGET, out)
local adopt = ARGV[5] == '1'
for i = 0, tonumber(ARGV[6]) - 1 do
  local o, sid, old, new, t, r = receipt(fields(ARGV[7 + i]), adopt, out)
  local n = #head
  head[n + 1], head[n + 2], head[n + 3] = o, sid, old
  head[n + 4], head[n + 5], head[n + 6] = new, t, r
end
head[2] = next_due()
return append(head, out)
"""
)

#: ARGV[5..]: id, session id, start, end, complete_at, offset, sent_at, recipient field, tag
#: ('' for none), max_tags_per_session.
#: Reply: data lost (1/0), next due, 1 tracked / 0 not, then released records as in RECEIPT.
TRACK = _generate(
    "#!lua"
    + _PROGRAM
    + """
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
local g = nil
if ARGV[13] ~= '' then g = tag_of(sk, ARGV[13], tonumber(ARGV[14])) end
insert(sk, sid, id, tonumber(ARGV[10]), ARGV[11], ARGV[12], g, false, out)
return append({lost, next_due(), 1}, out)
"""
)

#: One cleanup batch: release up to BUDGET expired records, drop old tombstones; ARGV[5] = 1
#: records ``last_cleanup``. In a session due to complete, only the windows that ended before
#: its completion expire here. Reply: data lost, released, tombstones dropped, then released
#: records as in RECEIPT.
EXPIRE = _generate(
    "#!lua flags=allow-oom"
    + _PRELUDE
    + """
local out = {}
local lost = marker()
local released, dropped = expire(BUDGET, out)
if ARGV[5] == '1' then redis.call('HSET', META, 'last_cleanup', NOW_S) end
return append({lost, released, dropped}, out)
"""
)

#: The Stream of completed sessions (``KEYS[8]``): the run that completes a session XADDs its
#: summary. At ``maxlen`` entries the oldest go first, exactly; each of them the consumer group
#: had not acknowledged (never read: after the group's last-delivered id; or read and still
#: pending) is counted in META ``events_lost``. A group Redis lost (with its data, or deleted)
#: is created again from the start of the Stream, so no entry is skipped.
_PUBLISH = """
local EVENTS, GROUP = KEYS[8], @GROUP@

local function id_after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, bm = tonumber(am), tonumber(bm)
  return am > bm or (am == bm and tonumber(as) > tonumber(bs))
end

-- The group's last-delivered id; the group (and the Stream) created when missing.
local function last_delivered()
  if redis.call('EXISTS', EVENTS) == 1 then
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', EVENTS)) do
      local fields = {}
      for i = 1, #g, 2 do fields[g[i]] = g[i + 1] end
      if fields['name'] == GROUP then return fields['last-delivered-id'] end
    end
  end
  redis.call('XGROUP', 'CREATE', EVENTS, GROUP, '0', 'MKSTREAM')
  return '0-0'
end

-- XADD the summary; returns how many unacknowledged entries the cap trimmed to make room.
local function publish(summary, cleared, maxlen)
  local last = last_delivered()
  local lost = 0
  local n = redis.call('XLEN', EVENTS) - maxlen + 1
  if n > 0 then
    local old = redis.call('XRANGE', EVENTS, '-', '+', 'COUNT', n)
    for _, entry in ipairs(old) do
      if id_after(entry[1], last) then lost = lost + 1 end
    end
    local first_id, last_id = old[1][1], old[#old][1]
    lost = lost + #redis.call('XPENDING', EVENTS, GROUP, first_id, last_id, n)
    redis.call('XTRIM', EVENTS, 'MAXLEN', maxlen - 1)
    if lost > 0 then redis.call('HINCRBY', META, 'events_lost', lost) end
  end
  redis.call('XADD', EVENTS, '*', 'type', 'session_completed', 'summary', summary,
             'cleared', cleared)
  return lost
end
"""

#: ARGV[5..]: session id, history limit, records already released by earlier batches of this
#: completion, event_stream_maxlen. Releases up to BUDGET records of a due session; when none
#: are left, moves its summary to history, XADDs it to the Stream of completed sessions and
#: deletes the session, all in this one call.
#: Reply: data lost, state ('more', 'done', 'gone', 'notdue'), released, history trimmed,
#: summary JSON, Stream entries trimmed unacknowledged, then released records as in RECEIPT.
COMPLETE = _generate(
    "#!lua flags=allow-oom"
    + _PRELUDE
    + _PUBLISH
    + """
local sid, limit = ARGV[5], tonumber(ARGV[6])
local sk = skey(sid)
local out = {}
local lost = marker()
local ca = redis.call('HGET', sk, 'complete_at')
if ca and tonumber(ca) > NOW then return {lost, 'notdue', 0, 0, '', 0} end
local ids = redis.call('ZRANGE', okey(sid), 0, BUDGET - 1)
for _, id in ipairs(ids) do
  local rec = redis.call('HMGET', mkey(id), 'st', 't', 'r')
  if rec[1] then
    release(id, sid, tonumber(rec[1]), rec[2], rec[3], 'session', out)
  else
    forget(id, sid)
  end
end
if #ids >= BUDGET then return append({lost, 'more', #ids, 0, '', 0}, out) end
redis.call('ZREM', SESSIONS, sid)
redis.call('ZREM', DUE, sid)
redis.call('DEL', okey(sid))
if not ca then return append({lost, 'gone', #ids, 0, '', 0}, out) end
local h = redis.call('HGETALL', sk)
add_latency(h)
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
local dropped = publish(summary, tonumber(ARGV[7]) + #ids, tonumber(ARGV[8]))
return append({lost, 'done', #ids, trimmed, summary, dropped}, out)
"""
)

#: Everything the views show, read atomically: JSON.
VIEWS = _generate("""#!lua flags=no-writes
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
res.events = redis.call('XLEN', KEYS[8])
res.events_pending = 0
if redis.call('EXISTS', KEYS[8]) == 1 then
  local pending = redis.pcall('XPENDING', KEYS[8], @GROUP@)
  if type(pending) == 'table' and not pending.err then res.events_pending = pending[1] end
end
return cjson.encode(res)
""")

#: KEYS[1] = the Stream of completed sessions. Removes from the group the consumers (other than
#: ARGV[2]) with nothing pending that have not read for ARGV[1] ms: each process start adds one
#: (a name unique to the process), so the group stays bounded. Atomic: a consumer is removed
#: only while nothing is pending for it. Reply: how many were removed.
PRUNE_CONSUMERS = _generate("""#!lua flags=allow-oom
local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], @GROUP@)
if type(consumers) ~= 'table' or consumers.err then return 0 end
local removed = 0
for _, c in ipairs(consumers) do
  local fields = {}
  for i = 1, #c, 2 do fields[c[i]] = c[i + 1] end
  if fields['name'] ~= ARGV[2] and tonumber(fields['pending']) == 0
     and tonumber(fields['idle']) >= tonumber(ARGV[1]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], @GROUP@, fields['name'])
    removed = removed + 1
  end
end
return removed
""")
