"""The agent registry on Redis: one hash per agent, one set per capability, Lua for atomic choices.

Layout under the namespace's ``...:reg`` prefix: ``agents`` (a set of names), ``agent:<name>`` (a hash:
capabilities and metadata as JSON, type, registration and heartbeat times, load, assignments) and
``cap:<capability>`` (the set of agents offering it). Registration, unregistration, heartbeats and
load changes are Lua scripts so that the capability index never disagrees with the hashes, and
:meth:`RedisAgentRegistry.acquire` picks the least busy healthy agent and increments its load in one
atomic step, so concurrent callers in different processes never pick on the same stale load. Times
are the callers' clocks (Unix seconds); hosts are expected to be NTP-synchronised, which is far finer
than any sensible heartbeat timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentadapter.protocol._redis import RedisLink, translate_errors
from agentadapter.protocol.envelope import check_json, validate_name
from agentadapter.protocol.errors import AgentNotFoundError, InvalidValueError, NoAgentAvailableError
from agentadapter.protocol.registry import AgentInfo, AgentRegistry, normalize_capabilities, selection_key

__all__ = ["RedisAgentRegistry"]

# ARGV: base, name, capabilities JSON, type, metadata JSON, now, capability...
_REGISTER = """
local base, name = ARGV[1], ARGV[2]
local key = base .. ':agent:' .. name
local old = redis.call('HGET', key, 'caps')
if old then
  for _, cap in ipairs(cjson.decode(old)) do redis.call('SREM', base .. ':cap:' .. cap, name) end
end
redis.call('HSET', key, 'name', name, 'caps', ARGV[3], 'type', ARGV[4], 'meta', ARGV[5],
  'registered_at', ARGV[6], 'heartbeat', ARGV[6])
redis.call('HSETNX', key, 'load', 0)
redis.call('HSETNX', key, 'assigned', 0)
for i = 7, #ARGV do redis.call('SADD', base .. ':cap:' .. ARGV[i], name) end
redis.call('SADD', base .. ':agents', name)
return redis.call('HGETALL', key)
"""

# ARGV: base, name. Returns 1 if it existed.
_UNREGISTER = """
local base, name = ARGV[1], ARGV[2]
local key = base .. ':agent:' .. name
local caps = redis.call('HGET', key, 'caps')
if not caps then return 0 end
for _, cap in ipairs(cjson.decode(caps)) do redis.call('SREM', base .. ':cap:' .. cap, name) end
redis.call('DEL', key)
redis.call('SREM', base .. ':agents', name)
return 1
"""

# ARGV: base, name, now, load ('' to keep). Returns 0 if the agent is unknown.
_HEARTBEAT = """
local key = ARGV[1] .. ':agent:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'heartbeat', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', key, 'load', ARGV[4]) end
return 1
"""

# ARGV: base, name, load. Returns 0 if the agent is unknown.
_SET_LOAD = """
local key = ARGV[1] .. ':agent:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'load', ARGV[3])
return 1
"""

# ARGV: base, name
_RELEASE = """
local key = ARGV[1] .. ':agent:' .. ARGV[2]
local load = tonumber(redis.call('HGET', key, 'load') or '0')
if load > 0 then redis.call('HINCRBY', key, 'load', -1) end
return 1
"""

# ARGV: base, now, heartbeat timeout, capability...
# Returns {1, hash fields...} for the chosen agent, or {0, candidates} if none is healthy.
_ACQUIRE = """
local base, now, timeout = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local names
if #ARGV == 3 then
  names = redis.call('SMEMBERS', base .. ':agents')
else
  local keys = {}
  for i = 4, #ARGV do keys[#keys + 1] = base .. ':cap:' .. ARGV[i] end
  names = redis.call('SINTER', unpack(keys))
end
local best, best_load, best_assigned
for _, name in ipairs(names) do
  local v = redis.call('HMGET', base .. ':agent:' .. name, 'heartbeat', 'load', 'assigned')
  if v[1] and now - tonumber(v[1]) <= timeout then
    local load, assigned = tonumber(v[2]) or 0, tonumber(v[3]) or 0
    if not best or load < best_load or (load == best_load and (assigned < best_assigned
        or (assigned == best_assigned and name < best))) then
      best, best_load, best_assigned = name, load, assigned
    end
  end
end
if not best then return {0, #names} end
local key = base .. ':agent:' .. best
redis.call('HINCRBY', key, 'load', 1)
redis.call('HINCRBY', key, 'assigned', 1)
local out = {1}
for _, item in ipairs(redis.call('HGETALL', key)) do out[#out + 1] = item end
return out
"""


class RedisAgentRegistry(AgentRegistry):
    """The agent registry on Redis (see the module docstring). Use it from one event loop."""

    def __init__(
        self,
        redis: RedisLink | str,
        *,
        namespace: str = "default",
        heartbeat_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(heartbeat_timeout_s=heartbeat_timeout_s, clock=clock)
        self._link = redis if isinstance(redis, RedisLink) else RedisLink(redis, namespace=namespace)
        self._link.retain()
        self._client = self._link.commands
        self._base = self._link.key("reg")
        self._register_script = self._link.register_script(_REGISTER)
        self._unregister_script = self._link.register_script(_UNREGISTER)
        self._heartbeat_script = self._link.register_script(_HEARTBEAT)
        self._set_load_script = self._link.register_script(_SET_LOAD)
        self._release_script = self._link.register_script(_RELEASE)
        self._acquire_script = self._link.register_script(_ACQUIRE)

    @property
    def link(self) -> RedisLink:
        """The Redis client and namespace this registry uses."""
        return self._link

    @translate_errors
    async def start(self) -> None:
        await self._link.ping()

    async def close(self) -> None:
        if self._closed:
            return
        await super().close()
        await self._link.release()

    def _info(self, fields: Mapping[bytes, bytes], now: float) -> AgentInfo:
        heartbeat = float(fields[b"heartbeat"])
        return AgentInfo(
            name=fields[b"name"].decode(),
            capabilities=frozenset(json.loads(fields[b"caps"])),
            agent_type=fields[b"type"].decode(),
            metadata=json.loads(fields[b"meta"]),
            registered_at=float(fields[b"registered_at"]),
            last_heartbeat=heartbeat,
            load=int(fields.get(b"load", b"0")),
            assigned=int(fields.get(b"assigned", b"0")),
            healthy=self.is_healthy(heartbeat, now),
        )

    @staticmethod
    def _pairs(flat: list[Any]) -> dict[bytes, bytes]:
        return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}

    @translate_errors
    async def register(
        self,
        name: str,
        capabilities: Iterable[str] = (),
        *,
        agent_type: str = "agent",
        metadata: Mapping[str, Any] | None = None,
    ) -> AgentInfo:
        self._check_open()
        validate_name(name)
        caps = sorted(normalize_capabilities(capabilities))
        meta = dict(metadata or {})
        check_json(meta, f"metadata of agent {name!r}", error=InvalidValueError)
        now = self._clock()
        flat = await self._register_script(
            args=[self._base, name, json.dumps(caps), agent_type, json.dumps(meta), repr(now), *caps]
        )
        return self._info(self._pairs(flat), now)

    @translate_errors
    async def unregister(self, name: str) -> bool:
        self._check_open()
        return bool(await self._unregister_script(args=[self._base, name]))

    @translate_errors
    async def heartbeat(self, name: str, *, load: int | None = None) -> None:
        self._check_open()
        known = await self._heartbeat_script(
            args=[self._base, name, repr(self._clock()), "" if load is None else max(0, int(load))]
        )
        if not known:
            raise AgentNotFoundError(name)

    @translate_errors
    async def get(self, name: str) -> AgentInfo | None:
        self._check_open()
        fields = await self._client.hgetall(f"{self._base}:agent:{name}")
        return self._info(fields, self._clock()) if fields else None

    async def _infos(self, names: Iterable[bytes]) -> list[AgentInfo]:
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.hgetall(f"{self._base}:agent:{name.decode()}")
            rows = await pipe.execute()
        now = self._clock()
        # An agent unregistered between the two reads leaves an empty hash: skip it.
        return [self._info(fields, now) for fields in rows if fields]

    @translate_errors
    async def agents(self, *, healthy_only: bool = False) -> list[AgentInfo]:
        self._check_open()
        infos = await self._infos(await self._client.smembers(f"{self._base}:agents"))
        return sorted((info for info in infos if info.healthy or not healthy_only), key=lambda info: info.name)

    @translate_errors
    async def find(self, *capabilities: str, healthy_only: bool = True) -> list[AgentInfo]:
        self._check_open()
        wanted = sorted(normalize_capabilities(capabilities))
        if wanted:
            names = await self._client.sinter([f"{self._base}:cap:{cap}" for cap in wanted])
        else:
            names = await self._client.smembers(f"{self._base}:agents")
        infos = await self._infos(names)
        return sorted((info for info in infos if info.healthy or not healthy_only), key=selection_key)

    @translate_errors
    async def acquire(self, *capabilities: str) -> AgentInfo:
        self._check_open()
        wanted = sorted(normalize_capabilities(capabilities))
        now = self._clock()
        result = await self._acquire_script(args=[self._base, repr(now), repr(self.heartbeat_timeout_s), *wanted])
        if not int(result[0]):
            raise NoAgentAvailableError(tuple(capabilities), registered=int(result[1]), healthy=0)
        return self._info(self._pairs(result[1:]), now)

    @translate_errors
    async def release(self, name: str) -> None:
        self._check_open()
        await self._release_script(args=[self._base, name])

    @translate_errors
    async def set_load(self, name: str, load: int) -> None:
        self._check_open()
        if not await self._set_load_script(args=[self._base, name, max(0, int(load))]):
            raise AgentNotFoundError(name)
