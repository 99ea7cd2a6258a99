"""The message bus on Redis Streams: inboxes shared by every process of a run (Redis 7.0 or later).

Each agent's inbox is four streams, one per priority level (``...:bus:q:<agent>:<level>``), each with
one consumer group (``inbox``) whose consumers are the bus instances reading that inbox. A send is one
Lua script call: it resolves the recipients (direct, the members set for a broadcast, or the topic
subscriptions, matched server-side with the same ``*``/``#`` rules as in-process), applies each
inbox's capacity policy, appends to the right stream and to the audit history stream
(``...:bus:hist``, whose ids are the messages' creation times, so history queries are stream ranges).
A receive is one Lua call too: it first reclaims, with XAUTOCLAIM, messages another consumer took and
did not acknowledge within ``claim_idle_s`` (that consumer is presumed dead), then reads new messages
highest priority first, and with ``auto_ack`` acknowledges and deletes them in the same call. When the
inbox is empty the consumer blocks on XREADGROUP; what that returns is acknowledged in the background
(a crash in between means a redelivery, never a loss). A handler's acknowledgements ride along with
its next read. Acknowledged entries are deleted, so a stream's length is what its inbox holds.
Responses to requests go to a per-bus reply stream read by one listener task. Expiry and retention
are checked by the consumer. Inboxes without their own configuration (``open_inbox(agent, config)``,
stored in Redis) get the sending bus's default capacity and policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from redis.exceptions import ResponseError

from agentadapter.observability.metrics import BUS_METRICS
from agentadapter.protocol._redis import RedisLink, parse_stream_id, translate_errors
from agentadapter.protocol.bus import (
    BusConfig,
    FullPolicy,
    MessageBus,
    QueueConfig,
    cancel_and_wait,
    filter_history,
)
from agentadapter.protocol.envelope import (
    Envelope,
    MessageType,
    check_priority,
    validate_name,
    validate_pattern,
    validate_topic,
)
from agentadapter.protocol.errors import InvalidEnvelopeError, ProtocolClosedError, QueueFullError

__all__ = ["RedisMessageBus"]

logger = logging.getLogger("agentadapter.protocol.redis_bus")

_GROUP = "inbox"
_LEVELS = (3, 2, 1, 0)

# Shared Lua. at_or_after: a stream id for time ``ms`` (the sender's clock), or just after the stream's
# last entry if that is later - ids must grow, so history ids are creation times made monotonic, and a
# history query by time is a range over them. match: dot-separated topic matching ('*' = one segment,
# '#' = zero or more), as in envelope.py.
_LUA_MATCH = """
local function at_or_after(key, ms)
  local last = redis.call('XREVRANGE', key, '+', '-', 'COUNT', 1)
  if #last > 0 then
    local last_ms = string.sub(last[1][1], 1, string.find(last[1][1], '-', 1, true) - 1)
    if tonumber(last_ms) > tonumber(ms) then ms = last_ms end
  end
  return ms .. '-*'
end
local function split(s)
  local t = {}
  for part in (s .. '.'):gmatch('(.-)%.') do t[#t + 1] = part end
  return t
end
local function match(p, pi, t, ti)
  while pi <= #p do
    local seg = p[pi]
    if seg == '#' then
      if pi == #p then return true end
      for k = ti, #t + 1 do
        if match(p, pi + 1, t, k) then return true end
      end
      return false
    end
    if ti > #t then return false end
    if seg ~= '*' and seg ~= t[ti] then return false end
    pi = pi + 1
    ti = ti + 1
  end
  return ti > #t
end
"""

# ARGV: base, header, target, sender, data. The header packs the small fields into one argument
# (each argument costs an encode on the client): "mode level history_max default_max default_policy
# created_ms history_min_id", mode d direct, t topic, b broadcast, r reply, x expired (history only);
# history_max 0 skips the history; history_min_id '-' means no age limit.
# Returns {delivered, {full agents}, evicted}
_SEND = (
    _LUA_MATCH
    + """
local base, target, sender, data = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local h = {}
for field in string.gmatch(ARGV[2], '%S+') do h[#h + 1] = field end
local mode, level, hist_max, def_max, def_policy = h[1], h[2], tonumber(h[3]), tonumber(h[4]), h[5]
if hist_max > 0 then
  local hist = base .. ':hist'
  redis.call('XADD', hist, 'MAXLEN', '~', hist_max, at_or_after(hist, h[6]), 'e', data)
  if h[7] ~= '-' then redis.call('XTRIM', hist, 'MINID', '~', h[7]) end
end
if mode == 'x' then return {0, {}, 0} end
if mode == 'r' then
  local key = base .. ':reply:' .. target
  redis.call('XADD', key, 'MAXLEN', '~', 10000, '*', 'e', data)
  redis.call('PEXPIRE', key, 3600000)
  return {1, {}, 0}
end
local recipients
if mode == 'd' then
  recipients = {target}
elseif mode == 'b' then
  recipients = redis.call('SMEMBERS', base .. ':inboxes')
else
  recipients = {}
  local seen = {}
  local topic = split(target)
  for _, entry in ipairs(redis.call('SMEMBERS', base .. ':subs')) do
    local nl = string.find(entry, '\\n', 1, true)
    local agent = string.sub(entry, nl + 1)
    if not seen[agent] and match(split(string.sub(entry, 1, nl - 1)), 1, topic, 1) then
      seen[agent] = true
      recipients[#recipients + 1] = agent
    end
  end
end
local delivered, full, evicted = 0, {}, 0
for _, agent in ipairs(recipients) do
  if not (mode == 'b' and agent == sender) then
    local q = base .. ':q:' .. agent .. ':'
    local maxsize, policy = def_max, def_policy
    local cfg = redis.call('HGET', base .. ':qcfg', agent)
    if cfg then
      local a = string.find(cfg, ' ', 1, true)
      local b = string.find(cfg, ' ', a + 1, true)
      maxsize = tonumber(string.sub(cfg, 1, a - 1))
      policy = string.sub(cfg, a + 1, b - 1)
    end
    local held = redis.call('XLEN', q .. '0') + redis.call('XLEN', q .. '1')
      + redis.call('XLEN', q .. '2') + redis.call('XLEN', q .. '3')
    local room = held < maxsize
    if not room and policy == 'drop_oldest' then
      -- evict the oldest message not yet delivered, lowest priority first
      for l = 0, 3 do
        local key = q .. l
        local after = '-'
        local groups = redis.pcall('XINFO', 'GROUPS', key)
        if type(groups) == 'table' and not groups.err then
          for _, g in ipairs(groups) do
            local name, last
            for i = 1, #g, 2 do
              if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then last = g[i + 1] end
            end
            if name == 'inbox' and last then after = '(' .. last end
          end
        end
        local oldest = redis.call('XRANGE', key, after, '+', 'COUNT', 1)
        if #oldest > 0 then
          redis.call('XDEL', key, oldest[1][1])
          evicted = evicted + 1
          room = true
          break
        end
      end
    end
    if room then
      redis.call('XADD', q .. level, '*', 'e', data)
      delivered = delivered + 1
    else
      full[#full + 1] = agent
    end
  end
end
return {delivered, full, evicted}
"""
)

# ARGV: base, agent, consumer, count, claim idle ms (0: do not reclaim now), auto-ack (1/0), then
#       level, id pairs of earlier messages to acknowledge and delete first.
# Returns {waiting, agent config or false, level, id, data, reclaimed, level, id, data, reclaimed, ...}
_POP = """
local base, agent, consumer = ARGV[1], ARGV[2], ARGV[3]
local remaining, claim_ms, auto_ack = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6] == '1'
local q = base .. ':q:' .. agent .. ':'
for i = 7, #ARGV, 2 do
  redis.call('XACK', q .. ARGV[i], 'inbox', ARGV[i + 1])
  redis.call('XDEL', q .. ARGV[i], ARGV[i + 1])
end
local out = {0, redis.call('HGET', base .. ':qcfg', agent)}
local function take(key, level, id, fields, reclaimed)
  if fields then
    out[#out + 1] = level
    out[#out + 1] = id
    out[#out + 1] = fields[2]
    out[#out + 1] = reclaimed
    remaining = remaining - 1
  end
  if auto_ack then
    redis.call('XACK', key, 'inbox', id)
    redis.call('XDEL', key, id)
  end
end
if claim_ms > 0 then
  for level = 3, 0, -1 do
    if remaining <= 0 then break end
    local key = q .. level
    local r = redis.pcall('XAUTOCLAIM', key, 'inbox', consumer, claim_ms, '0-0', 'COUNT', remaining)
    if type(r) == 'table' and not r.err then
      for _, e in ipairs(r[2]) do take(key, level, e[1], e[2], 1) end
    end
  end
end
for level = 3, 0, -1 do
  if remaining <= 0 then break end
  local key = q .. level
  local r = redis.pcall('XREADGROUP', 'GROUP', 'inbox', consumer, 'COUNT', remaining, 'STREAMS', key, '>')
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'NOGROUP', 1, true) then return redis.error_reply(r.err) end
    redis.call('XGROUP', 'CREATE', key, 'inbox', '0', 'MKSTREAM')
    r = redis.call('XREADGROUP', 'GROUP', 'inbox', consumer, 'COUNT', remaining, 'STREAMS', key, '>')
  end
  if r then
    for _, e in ipairs(r[1][2]) do take(key, level, e[1], e[2], 0) end
  end
end
local waiting = 0
for level = 0, 3 do
  local key = q .. level
  local pending = redis.pcall('XPENDING', key, 'inbox')
  waiting = waiting + redis.call('XLEN', key)
  if type(pending) == 'table' and not pending.err then waiting = waiting - pending[1] end
end
out[1] = waiting
return out
"""

# ARGV: base, agent. Returns messages waiting (held minus delivered-but-unacknowledged).
_DEPTH = """
local q = ARGV[1] .. ':q:' .. ARGV[2] .. ':'
local waiting = 0
for level = 0, 3 do
  local key = q .. level
  local pending = redis.pcall('XPENDING', key, 'inbox')
  waiting = waiting + redis.call('XLEN', key)
  if type(pending) == 'table' and not pending.err then waiting = waiting - pending[1] end
end
return waiting
"""

# ARGV: base, agent. Deletes the inbox, its membership, configuration and subscriptions.
_CLOSE_INBOX = """
local base, agent = ARGV[1], ARGV[2]
local q = base .. ':q:' .. agent .. ':'
redis.call('DEL', q .. '0', q .. '1', q .. '2', q .. '3')
redis.call('SREM', base .. ':inboxes', agent)
redis.call('HDEL', base .. ':qcfg', agent)
local suffix = '\\n' .. agent
for _, entry in ipairs(redis.call('SMEMBERS', base .. ':subs')) do
  if string.sub(entry, -#suffix) == suffix then redis.call('SREM', base .. ':subs', entry) end
end
return 1
"""

_MODE_EXPIRED = "x"

# (level, stream entry id, wire data or None if deleted, 1 if reclaimed from another consumer)
_Entry = tuple[int, bytes, bytes | None, int]


def _default_consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def _config_text(config: QueueConfig) -> str:
    # "maxsize policy retention wait_timeout": the Lua scripts read the first two fields.
    retention = "-" if config.retention_s is None else repr(config.retention_s)
    return f"{config.maxsize} {config.policy.value} {retention} {config.wait_timeout_s!r}"


def _parse_config(text: bytes | str) -> QueueConfig:
    raw = text.decode() if isinstance(text, bytes) else text
    maxsize, policy, retention, wait_timeout = raw.split(" ")
    return QueueConfig(
        maxsize=int(maxsize),
        policy=FullPolicy(policy),
        retention_s=None if retention == "-" else float(retention),
        wait_timeout_s=float(wait_timeout),
    )


class RedisMessageBus(MessageBus):
    """The message bus on Redis Streams (see the module docstring for the layout).

    ``redis``: a URL, or a :class:`RedisLink` shared with the registry and context. ``consumer``
    names this instance in the consumer groups (default: host, pid and a random suffix); it must be
    unique among live consumers. Use it from one event loop.
    """

    transport = "redis"
    _reply_in_background = True

    def __init__(
        self,
        redis: RedisLink | str,
        *,
        namespace: str = "default",
        config: BusConfig | None = None,
        consumer: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(config)
        self._link = redis if isinstance(redis, RedisLink) else RedisLink(redis, namespace=namespace)
        self._link.retain()
        self._client = self._link.commands
        self._base = self._link.key("bus")
        self.consumer = consumer or _default_consumer_name()
        self._clock = clock
        self._send_script = self._link.register_script(_SEND)
        self._pop_script = self._link.register_script(_POP)
        self._depth_script = self._link.register_script(_DEPTH)
        self._close_inbox_script = self._link.register_script(_CLOSE_INBOX)
        queue = self.config.queue
        self._default_max = str(queue.maxsize)
        self._default_policy = queue.policy.value
        self._history_max = str(self.config.history_max)
        self._claim_ms = max(1, int(self.config.claim_idle_s * 1000))
        # Reclaiming scans the pending list, so it runs at most this often per inbox.
        self._claim_interval = min(max(self.config.claim_idle_s / 4, 0.01), 5.0)
        self._max_block_s = min(self._claim_interval, self._link.max_block_s)
        self._listen_block_ms = int(min(1.0, self._link.max_block_s) * 1000)
        self._next_claim: dict[str, float] = {}
        self._agent_configs: dict[str, tuple[bytes, QueueConfig]] = {}
        self._receipts: dict[str, dict[str, tuple[int, bytes]]] = {}  # agent -> envelope id -> (level, id)
        # Entries a blocking read returned beyond max_messages: already ours, handed out next time.
        self._spill: dict[str, list[_Entry]] = {}
        self._depths: dict[str, int] = {}
        self._reply_address = self.consumer
        self._background_acks: set[asyncio.Task[None]] = set()
        self._reply_listener: asyncio.Task[None] | None = None
        BUS_METRICS.add_depth_source(self)

    @property
    def link(self) -> RedisLink:
        """The Redis client and namespace this bus uses."""
        return self._link

    @property
    def reply_address(self) -> str:
        return self._reply_address

    def queue_depths(self) -> dict[str, int]:
        """Last known waiting messages per agent read through this bus (for the metrics collector)."""
        return dict(self._depths)

    def _inbox_key(self, agent: str, level: int) -> str:
        return f"{self._base}:q:{agent}:{level}"

    @translate_errors
    async def start(self) -> None:
        await self._link.ping()

    async def close(self) -> None:
        if self._closed:
            return
        listener, self._reply_listener = self._reply_listener, None
        if listener is not None:
            await cancel_and_wait(listener)
        await super().close()
        if self._background_acks:
            await asyncio.gather(*self._background_acks, return_exceptions=True)
        with contextlib.suppress(Exception):  # best effort: the stream also expires on its own
            await self._client.delete(f"{self._base}:reply:{self._reply_address}")
        await self._link.release()

    # -- inboxes -----------------------------------------------------------------------------

    @translate_errors
    async def open_inbox(self, agent: str, config: QueueConfig | None = None) -> None:
        self._check_open()
        validate_name(agent)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.sadd(f"{self._base}:inboxes", agent)
            if config is not None:
                pipe.hset(f"{self._base}:qcfg", agent, _config_text(config))
            for level in _LEVELS:
                pipe.xgroup_create(self._inbox_key(agent, level), _GROUP, id="0", mkstream=True)
            results = await pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, ResponseError) and "BUSYGROUP" not in str(result):
                raise result

    @translate_errors
    async def close_inbox(self, agent: str) -> None:
        self._check_open()
        await self._close_inbox_script(args=[self._base, agent])
        self._receipts.pop(agent, None)
        self._depths.pop(agent, None)

    @translate_errors
    async def subscribe(self, agent: str, pattern: str) -> None:
        self._check_open()
        validate_name(agent)
        validate_pattern(pattern)
        await self._client.sadd(f"{self._base}:subs", f"{pattern}\n{agent}")

    @translate_errors
    async def unsubscribe(self, agent: str, pattern: str) -> None:
        self._check_open()
        await self._client.srem(f"{self._base}:subs", f"{pattern}\n{agent}")

    @translate_errors
    async def subscriptions(self, agent: str) -> list[str]:
        self._check_open()
        suffix = f"\n{agent}"
        entries = await self._client.smembers(f"{self._base}:subs")
        return sorted(text[: -len(suffix)] for text in (entry.decode() for entry in entries) if text.endswith(suffix))

    @translate_errors
    async def queue_depth(self, agent: str) -> int:
        self._check_open()
        depth = int(await self._depth_script(args=[self._base, agent]))
        self._depths[agent] = depth
        return depth

    # -- sending -----------------------------------------------------------------------------

    @translate_errors
    async def send(self, envelope: Envelope) -> int:
        if self._closed:
            raise ProtocolClosedError("message bus")
        recipient, topic = envelope.recipient, envelope.topic
        if recipient is not None:
            if topic is not None:
                envelope.validate()  # raises: both recipient and topic
            mode, target = "d", recipient
        elif topic is not None:
            validate_topic(topic)
            mode, target = "t", topic
        else:
            mode, target = "b", ""
        priority = envelope.priority
        if priority not in (0, 1, 2, 3):
            check_priority(priority, envelope.id)
        data = envelope.to_wire()
        BUS_METRICS.sent[envelope.sender] += 1
        if envelope.ttl_s is not None and envelope.is_expired(self._clock()):
            mode = _MODE_EXPIRED
            BUS_METRICS.dropped[recipient or topic or "*", "expired"] += 1
        result = await self._run_send(mode, target, int(priority), envelope, data, record=True)
        delivered, full, evicted = int(result[0]), result[1], int(result[2])
        if evicted:
            BUS_METRICS.dropped[recipient or topic or "*", "dropped_oldest"] += evicted
        for raw_agent in full:
            agent = raw_agent.decode()
            config = await self._queue_config(agent)
            if config.policy is FullPolicy.WAIT:
                try:
                    await self._send_waiting(agent, envelope, data, config)
                    delivered += 1
                    continue
                except QueueFullError:
                    BUS_METRICS.dropped[agent, "queue_full"] += 1
                    if mode == "d":
                        raise
            else:
                BUS_METRICS.dropped[agent, "queue_full"] += 1
                if mode == "d":
                    raise QueueFullError(agent, config.maxsize, config.policy.value)
            logger.warning("inbox of %r is full; it misses message %s", agent, envelope.id)
        return delivered

    async def _run_send(
        self, mode: str, target: str, level: int, envelope: Envelope, data: str, *, record: bool
    ) -> Any:
        retention = self.config.history_retention_s
        min_id = "-" if retention is None else str(int((self._clock() - retention) * 1000))
        header = (
            f"{mode} {level} {self._history_max if record else 0} {self._default_max} {self._default_policy} "
            f"{int(envelope.created_at * 1000)} {min_id}"
        )
        return await self._send_script(args=[self._base, header, target, envelope.sender, data])

    async def _queue_config(self, agent: str) -> QueueConfig:
        text = await self._client.hget(f"{self._base}:qcfg", agent)
        return self.config.queue if text is None else _parse_config(text)

    async def _send_waiting(self, agent: str, envelope: Envelope, data: str, config: QueueConfig) -> None:
        # Redis cannot block a writer until a stream shrinks, so poll with a growing pause.
        started = time.monotonic()
        pause = 0.001
        while True:
            waited = time.monotonic() - started
            if waited >= config.wait_timeout_s:
                raise QueueFullError(agent, config.maxsize, config.policy.value, waited_s=waited)
            await asyncio.sleep(min(pause, config.wait_timeout_s - waited))
            pause = min(pause * 2, 0.05)
            self._check_open()
            result = await self._run_send("d", agent, int(envelope.priority), envelope, data, record=False)
            if int(result[0]):
                return

    async def _deliver_reply(self, response: Envelope, reply_to: str | None) -> None:
        if reply_to is None:
            await self.send(response)
            return
        BUS_METRICS.sent[response.sender] += 1
        await self._run_send("r", reply_to, int(response.priority), response, response.to_wire(), record=True)

    async def _prepare_requests(self) -> None:
        if self._reply_listener is None or self._reply_listener.done():
            self._reply_listener = asyncio.create_task(
                self._listen_for_replies(), name=f"agentadapter-bus-replies:{self.consumer}"
            )

    async def _listen_for_replies(self) -> None:
        key = f"{self._base}:reply:{self._reply_address}"
        last_id: bytes | str = "0-0"  # the stream is this bus's own: start from its beginning
        while not self._closed:
            try:
                batches = await self._client.xread({key: last_id}, count=256, block=self._listen_block_ms)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reply listener of bus %s failed; retrying", self.consumer)
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in batches or ():
                for entry_id, fields in entries:
                    last_id = entry_id
                    try:
                        response = Envelope.from_wire(fields[b"e"])
                    except (InvalidEnvelopeError, ValueError, KeyError):
                        logger.warning("unreadable response %s on %s; skipped", entry_id, key)
                        continue
                    self._resolve(response)

    # -- receiving ---------------------------------------------------------------------------

    def _cached_config(self, agent: str) -> QueueConfig:
        cached = self._agent_configs.get(agent)
        return self.config.queue if cached is None else cached[1]

    def _agent_config(self, agent: str, raw: bytes | None) -> QueueConfig:
        if raw is None:
            self._agent_configs.pop(agent, None)
            return self.config.queue
        cached = self._agent_configs.get(agent)
        if cached is not None and cached[0] == raw:
            return cached[1]
        config = _parse_config(raw)
        self._agent_configs[agent] = (raw, config)
        return config

    @translate_errors
    async def get_messages(
        self, agent: str, max_messages: int = 100, timeout: float | None = 0.0, *, auto_ack: bool = True
    ) -> list[Envelope]:
        return await self._get(agent, max_messages, timeout, auto_ack, [])

    @translate_errors
    async def _ack_and_get(self, agent: str, done: list[Envelope], max_messages: int) -> list[Envelope]:
        # The handler's acknowledgements ride along with its next read: one round trip, not two.
        receipts = self._receipts.get(agent, {})
        acks = [receipt for envelope in done if (receipt := receipts.pop(envelope.id, None)) is not None]
        return await self._get(agent, max_messages, None, False, acks)

    async def _get(
        self,
        agent: str,
        max_messages: int,
        timeout: float | None,
        auto_ack: bool,
        acks: list[tuple[int, bytes]],
    ) -> list[Envelope]:
        if self._closed:
            raise ProtocolClosedError("message bus")
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if acks and self._spill.get(agent):
            await self._ack_entries(agent, acks)
            acks = []
        deadline = None if timeout is None else time.monotonic() + timeout
        spill = self._spill.get(agent)
        if spill:
            entries, self._spill[agent] = spill[:max_messages], spill[max_messages:]
            taken = await self._accept_read(agent, entries, self._cached_config(agent), auto_ack)
            if taken:
                return taken
        while True:
            now_mono = time.monotonic()
            claim_ms = 0
            if now_mono >= self._next_claim.get(agent, 0.0):
                claim_ms = self._claim_ms
                self._next_claim[agent] = now_mono + self._claim_interval
            ack_args = [item for level, entry_id in acks for item in (level, entry_id)]
            acks = []
            result = await self._pop_script(
                args=[self._base, agent, self.consumer, max_messages, claim_ms, 1 if auto_ack else 0, *ack_args]
            )
            self._depths[agent] = int(result[0])
            config = self._agent_config(agent, result[1])
            popped: list[_Entry] = [
                (int(result[i]), result[i + 1], result[i + 2], int(result[i + 3])) for i in range(2, len(result), 4)
            ]
            taken = await self._accept(agent, popped, config, auto_ack)
            if taken:
                return taken
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return taken
            # Block until something arrives, but not past the next reclaim: a dead consumer's
            # messages must be picked up even when nothing new is sent.
            block = self._max_block_s if remaining is None else min(remaining, self._max_block_s)
            taken = await self._block(agent, max_messages, block, config, auto_ack)
            if taken:
                return taken

    async def _block(
        self, agent: str, max_messages: int, block_s: float, config: QueueConfig, auto_ack: bool
    ) -> list[Envelope]:
        streams = {self._inbox_key(agent, level): ">" for level in _LEVELS}
        try:
            batches = await self._client.xreadgroup(
                _GROUP, self.consumer, streams, count=max_messages, block=max(1, int(block_s * 1000))
            )
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                return []  # the inbox was closed meanwhile; the next pop recreates it
            raise
        entries: list[_Entry] = []
        for stream, stream_entries in batches or ():
            level = int(stream.rsplit(b":", 1)[1])
            for entry_id, fields in stream_entries:
                entries.append((level, entry_id, fields.get(b"e") if fields else None, 0))
        if not entries:
            return []
        entries.sort(key=lambda entry: -entry[0])  # stable: keeps stream order within a level
        if len(entries) > max_messages:  # COUNT applies per stream: keep the surplus for next time
            self._spill.setdefault(agent, []).extend(entries[max_messages:])
            entries = entries[:max_messages]
        return await self._accept_read(agent, entries, config, auto_ack)

    async def _accept_read(
        self, agent: str, entries: list[_Entry], config: QueueConfig, auto_ack: bool
    ) -> list[Envelope]:
        """Accept entries read outside the pop script (which acknowledges its own when auto_ack)."""
        if auto_ack and entries:
            # Acknowledge in the background: the caller gets its messages a round trip sooner. A
            # crash before the acknowledgement lands means a redelivery, never a loss.
            task = asyncio.create_task(  # noqa: RUF006 - held in _background_acks until done
                self._ack_entries(agent, [(level, entry_id) for level, entry_id, _, _ in entries])
            )
            self._background_acks.add(task)
            task.add_done_callback(self._background_ack_done)
        return await self._accept(agent, entries, config, auto_ack)

    def _background_ack_done(self, task: asyncio.Task[None]) -> None:
        self._background_acks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "acknowledging messages failed (%r); they will be delivered again after %gs",
                task.exception(),
                self.config.claim_idle_s,
            )

    async def _accept(self, agent: str, entries: list[_Entry], config: QueueConfig, auto_ack: bool) -> list[Envelope]:
        """Decode entries; drop (and acknowledge) expired and over-retention ones; track receipts."""
        if not entries:
            return []
        now = self._clock()
        horizon = None if config.retention_s is None else now - config.retention_s
        taken: list[Envelope] = []
        discard: list[tuple[int, bytes]] = []
        receipts = None if auto_ack else self._receipts.setdefault(agent, {})
        reclaimed = 0
        for level, entry_id, data, was_reclaimed in entries:
            if data is None:
                discard.append((level, entry_id))
                continue
            try:
                envelope = Envelope.from_wire(data)
            except (InvalidEnvelopeError, ValueError):
                logger.warning("unreadable message %s in the inbox of %r; discarded", entry_id, agent)
                discard.append((level, entry_id))
                continue
            if envelope.ttl_s is not None and now >= envelope.created_at + envelope.ttl_s:
                BUS_METRICS.dropped[agent, "expired"] += 1
                discard.append((level, entry_id))
                continue
            if horizon is not None and envelope.created_at < horizon:
                BUS_METRICS.dropped[agent, "retention"] += 1
                discard.append((level, entry_id))
                continue
            reclaimed += was_reclaimed
            if receipts is not None:
                receipts[envelope.id] = (level, entry_id)
            taken.append(envelope)
        if discard and not auto_ack:
            await self._ack_entries(agent, discard)
        if reclaimed:
            BUS_METRICS.redelivered[agent] += reclaimed
        if taken:
            BUS_METRICS.delivered[agent] += len(taken)
            wall = time.time()
            observe = self._latency.observe
            for envelope in taken:
                observe(wall - envelope.created_at)
        return taken

    async def _ack_entries(self, agent: str, entries: Iterable[tuple[int, bytes]]) -> None:
        by_level: dict[int, list[bytes]] = {}
        for level, entry_id in entries:
            by_level.setdefault(level, []).append(entry_id)
        if not by_level:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for level, ids in by_level.items():
                key = self._inbox_key(agent, level)
                pipe.xack(key, _GROUP, *ids)
                pipe.xdel(key, *ids)
            await pipe.execute()

    @translate_errors
    async def ack(self, agent: str, envelopes: Iterable[Envelope]) -> None:
        receipts = self._receipts.get(agent)
        if not receipts:
            return
        entries = [receipt for envelope in envelopes if (receipt := receipts.pop(envelope.id, None)) is not None]
        if entries:
            await self._ack_entries(agent, entries)

    # -- audit -------------------------------------------------------------------------------

    @translate_errors
    async def history(
        self,
        *,
        run_id: str | None = None,
        agent: str | None = None,
        since: float | None = None,
        until: float | None = None,
        types: Iterable[MessageType | str] | None = None,
        limit: int = 1000,
    ) -> list[Envelope]:
        self._check_open()
        retention = self.config.history_retention_s
        if retention is not None:  # Redis trims approximately; the answer is exact
            horizon = self._clock() - retention
            since = horizon if since is None else max(since, horizon)
        # History ids are creation times (ms) made monotonic, so an entry is never filed earlier than
        # it was created but may be filed later (behind a sender whose clock runs ahead): start the
        # range at `since`, end it a minute after `until`, and filter on created_at exactly.
        start = "-" if since is None else str(max(0, int(since * 1000)))
        end = "+" if until is None else str(int((until + 60) * 1000))
        key = f"{self._base}:hist"
        matched: list[Envelope] = []
        while len(matched) < limit:
            page = await self._client.xrange(key, start, end, count=1000)
            if not page:
                break
            envelopes = [Envelope.from_wire(fields[b"e"]) for _, fields in page if fields and b"e" in fields]
            matched.extend(
                filter_history(
                    envelopes,
                    run_id=run_id,
                    agent=agent,
                    since=since,
                    until=until,
                    types=types,
                    limit=limit - len(matched),
                )
            )
            millis, sequence = parse_stream_id(page[-1][0])
            start = f"{millis}-{sequence + 1}"
            if len(page) < 1000:
                break
        return matched
