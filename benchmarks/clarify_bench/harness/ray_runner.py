"""Run benchmark episodes on a Ray cluster (``clarify-gym bench --ray [ADDRESS]``).

``--ray`` starts a local cluster of its own, even when ``RAY_ADDRESS`` is set or a cluster
started with ``ray start`` runs on this machine (Ray's ``ray.init()`` would join those);
``--ray ADDRESS`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``) joins a running one. An
address that does not answer within :data:`CONNECT_TIMEOUT_S` seconds, or ``auto`` with no
cluster to find, ends in one :class:`RayAddressError` line before any episode runs
(:func:`check_ray_address`). Ray is an optional extra (``pip install "clarify-gym[ray]"``),
imported only here.

``--ray-gpus G`` gives each actor of a local-model agent (a batched agent) G GPUs of the
cluster (``1``: one model per GPU; the actors load the model on ``cuda``); the other agents
(baselines, API models) never ask for a GPU.

Each agent gets ``--ray-actors`` :class:`EpisodeActor` actors, spread over the cluster. An actor
builds the agent once (a local model loads once per actor) and one env per thread, from the task
list the driver puts in the object store once. Unbatched agents (baselines, API models) run
whole episodes on ``ceil(concurrency / actors)`` threads per actor, so ``--concurrency N`` keeps
N episodes in flight across the cluster; batched agents (local models) run ``--batch-size``
episodes at a time through ``act_batch``, one batch per actor.

Only the driver writes: each finished episode comes back as its ``results.jsonl`` row and goes
through the same ``emit`` as the thread runner, so ``--resume``, the summary and the plots behave
exactly as without Ray. An episode whose actor dies (its process is killed, its node is lost) is
put back in the queue and rerun on a fresh actor, at most :data:`MAX_ATTEMPTS` times; an
exception inside an episode is a failed episode, as in the thread runner (logged, not
recorded, retried by ``--resume``). A batch that dies is rerun whole: its rows only come back
when the batch is done.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clarify_bench.harness.episodes import Episode, Failures, run_batched, run_episode
from clarify_gym.errors import ClarifyGymError, MissingDependencyError

__all__ = [
    "AUTH_HINT",
    "CONNECT_TIMEOUT_S",
    "MAX_ATTEMPTS",
    "EpisodeActor",
    "RayAddressError",
    "RayRunner",
    "agent_metadata",
    "check_ray_address",
    "code_paths",
    "forwarded_env",
    "require_ray",
]

logger = logging.getLogger(__name__)

#: Times one episode is started on an actor that then dies before it is given up on.
MAX_ATTEMPTS = 3

#: Seconds a Ray address gets to answer (a TCP connection, then Ray's own handshake).
CONNECT_TIMEOUT_S = 20.0


class RayAddressError(ClarifyGymError, ValueError):
    """A ``--ray`` address that cannot be used; the message names it and what to check."""


def _host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``HOST:PORT`` or ``ray://HOST:PORT``.

    >>> _host_port("ray://10.0.0.5:10001"), _host_port("[::1]:6379")
    (('10.0.0.5', 10001), ('::1', 6379))
    """
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not host or not port.isdigit():
        raise RayAddressError(
            f"--ray {address!r} is not an address: give HOST:PORT (the head's GCS port, 6379 by "
            "default), ray://HOST:PORT (Ray Client, 10001), 'auto', or no address for a local "
            "cluster"
        )
    return host.strip("[]"), int(port)


def check_ray_address(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str:
    """The address ``ray.init`` should join for ``--ray ADDRESS`` (``address`` itself), once a
    Ray cluster answers there; :class:`RayAddressError` in at most about ``timeout`` seconds
    otherwise.

    ``auto`` is looked up as Ray does (``RAY_ADDRESS``, the cluster ``ray start`` recorded, a
    running GCS of this machine) for the checks, and passed on as ``auto``. ``HOST:PORT`` and ``ray://HOST:PORT`` must accept a TCP
    connection, then a child process must join the cluster there (:func:`_probe_ray`): Ray's
    own ``ray.init`` retries an address that accepts but never answers as Ray for minutes.
    """
    require_ray()
    start = time.monotonic()
    given, found = address, address
    if address == "auto":
        from ray._private import services

        try:
            found = services.canonicalize_bootstrap_address_or_die("auto")
        except (ConnectionError, ValueError) as exc:
            raise RayAddressError(
                f"--ray auto found no Ray cluster to join ({str(exc).splitlines()[0]}): start one "
                "with `ray start --head`, pass its address, or use --ray alone for a local cluster"
            ) from None
        address = f"auto ({found})"
    host, port = _host_port(found)
    deadline = start + timeout
    check = (
        "check the host and port (`ray start --head` prints them; ray:// needs the head's Ray "
        "Client port, 10001 by default) and that this machine can reach it"
    )
    last: OSError | None = TimeoutError(f"no TCP connection within {timeout:g} s")
    while time.monotonic() < deadline:
        try:
            left = max(0.5, deadline - time.monotonic())
            with socket.create_connection((host, port), timeout=left):
                last = None
                break
        except OSError as exc:
            last = exc
            if isinstance(exc, ConnectionRefusedError):
                break  # nothing listens there: no use waiting
            time.sleep(0.5)
    if last is not None:
        raise RayAddressError(f"nothing answers at --ray {address} ({last}): {check}")
    # "auto" itself goes to ray.init: only then does Ray turn token authentication on by itself
    problem = _probe_ray(given, max(1.0, deadline - time.monotonic()))
    if problem is not None:
        raise RayAddressError(f"could not join a Ray cluster at --ray {address}: {problem}")
    return given


#: What :func:`_probe_ray` runs in a child process: join, report, leave.
_PROBE = (
    "import sys, ray; ray.init(address=sys.argv[1], log_to_driver=False, "
    "logging_level='ERROR'); print('ok', ray.cluster_resources().get('CPU')); ray.shutdown()"
)

#: What to check when a cluster answers but refuses this driver.
AUTH_HINT = (
    "if the cluster uses token authentication (Ray >= 2.60 turns it on when a token exists), "
    "set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or ~/.ray/auth_token) "
    "here; see docs/scaling_out.md"
)


def _probe_ray(address: str, timeout: float) -> str | None:
    """``None`` when a child process joins the cluster at ``address`` within ``timeout``
    seconds, else what went wrong, in one line."""
    import subprocess

    try:
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return (
            f"no Ray handshake within {timeout:.0f} s (is it the head's GCS port, 6379 by "
            f"default, or for ray:// its Ray Client port?); {AUTH_HINT}"
        )
    if out.returncode == 0 and out.stdout.startswith("ok"):
        return None
    lines = [line.strip() for line in out.stderr.splitlines() if line.strip()]
    last = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1] if lines else "")
    return f"{last[:300] or f'exit status {out.returncode}'}; {AUTH_HINT}"


Emit = Callable[[dict[str, Any]], None]


def agent_metadata(agent: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """What ``metadata.json`` records about one agent (the same with and without Ray)."""
    return {
        "class": f"{type(agent).__module__}.{type(agent).__qualname__}",
        "privileged": agent.privileged,
        "batched": agent.batched,
        "kwargs": kwargs,
        **agent.describe(),
    }


def code_paths(path: Sequence[str] | None = None) -> list[str]:
    """The driver's import folders outside the Python installation (the project, its tests):
    the actors get them on their ``PYTHONPATH``, so a ``py:module:Agent`` spec the driver can
    import, they can too.

    >>> code_paths(["", "/work/repo", sys.prefix + "/lib/python3/site-packages"]) == (
    ...     ["/work/repo"] if os.path.isdir("/work/repo") else [])
    True
    """
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    out = []
    for entry in sys.path if path is None else path:
        real = os.path.realpath(entry) if entry else ""
        if not real or not os.path.isdir(real):
            continue
        if any(real == p or real.startswith(p + os.sep) for p in prefixes):
            continue
        if real not in out:
            out.append(real)
    return out


#: Ray's switch that makes a cluster started here use the loopback address (127.0.0.1) instead of
#: the machine's network address; read once, when ``ray`` is first imported.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray(*, loopback: bool = False) -> Any:
    """The ``ray`` module, or :class:`~clarify_gym.errors.MissingDependencyError` naming the extra.

    ``loopback=True`` (a local cluster started by ``--ray``) keeps every Ray process on
    127.0.0.1, so a benchmark on one machine never listens on or talks to a network address; a
    cluster other machines can join is started with ``ray start --head`` and passed as
    ``--ray ADDRESS``.
    """
    if loopback and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ENV, "0")
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("ray", "ray", "clarify-gym bench --ray") from exc
    return ray


#: Environment variables the actors get from the driver: the LLM endpoint, model and key settings.
FORWARDED_PREFIXES = ("CLARIFY_GYM_", "OPENAI_")


def forwarded_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The driver's LLM settings (``CLARIFY_GYM_*``, ``OPENAI_*``), so every actor talks to the
    same endpoint with the same model, key, cache and limits as the driver would.

    >>> forwarded_env({"CLARIFY_GYM_LLM_MODEL": "m", "HOME": "/root", "OPENAI_API_KEY": "k"})
    {'CLARIFY_GYM_LLM_MODEL': 'm', 'OPENAI_API_KEY': 'k'}
    """
    environ = dict(os.environ) if environ is None else environ
    return {k: v for k, v in environ.items() if k.startswith(FORWARDED_PREFIXES)}


class EpisodeActor:
    """Plays episodes of one agent on one Ray worker (wrapped with ``ray.remote`` by
    :class:`RayRunner`; usable as a plain object in tests)."""

    def __init__(
        self,
        spec: str,
        kwargs: dict[str, Any],
        env_id: str,
        env_kwargs: dict[str, Any],
        tasks: list[Any],
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        from clarify_agents.registry import make_agent, parse_spec

        import clarify_gym  # noqa: F401  (registers the env ids in this process)

        if threads:
            import torch

            torch.set_num_threads(threads)
        self._device: str | None = None
        if device and "device" not in kwargs and _accepts(parse_spec(spec)[0](), "device"):
            import torch

            if device.startswith("cuda") and not torch.cuda.is_available():
                logger.warning("ray: this actor got a GPU, but torch sees no CUDA; using the CPU")
            else:
                kwargs, self._device = {**kwargs, "device": device}, device
        self._spec, self._kwargs = spec, kwargs
        self._env_id, self._env_kwargs, self._tasks = env_id, env_kwargs, tasks
        self._make_agent = make_agent
        self.agent = make_agent(spec, **kwargs)  # built once: a local model loads here
        self._spare = [self.agent]
        self._lock = threading.Lock()
        self._local = threading.local()

    def make_env(self) -> Any:
        import gymnasium as gym

        return gym.make(self._env_id, tasks=self._tasks, **self._env_kwargs)

    def describe(self) -> dict[str, Any]:
        """The agent's metadata, and where this actor runs (its process, the GPUs Ray gave it)."""
        try:
            import ray

            gpus = [str(g) for g in ray.get_gpu_ids()] if ray.is_initialized() else []
        except ImportError:  # a plain object in a test
            gpus = []
        kwargs = {k: v for k, v in self._kwargs.items() if not (k == "device" and self._device)}
        return {**agent_metadata(self.agent, kwargs), "pid": os.getpid(), "gpu_ids": gpus}

    def run(self, episode: Episode) -> dict[str, Any]:
        """One episode with an unbatched agent (one agent and env per actor thread)."""
        local = self._local
        if not hasattr(local, "env"):
            with self._lock:
                local.agent = self._spare.pop() if self._spare else None
            if local.agent is None:
                local.agent = self._make_agent(self._spec, **self._kwargs)
            local.env = self.make_env()
        return run_episode(episode, local.env, local.agent)

    def run_batch(self, episodes: list[Episode], batch_size: int) -> list[dict[str, Any]]:
        """Episodes of a batched agent in lock step; all their rows at the end."""
        rows: list[dict[str, Any]] = []
        run_batched(episodes, self.agent, self.make_env, batch_size, rows.append)
        return rows


def _accepts(factory: Any, name: str) -> bool:
    """Whether a class or factory takes the keyword ``name``."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def model_agent(spec: str) -> bool:
    """Whether ``spec`` builds a batched agent (a local model), the kind ``--ray-gpus`` is for.

    >>> model_agent("oracle"), model_agent("smollm2")
    (False, True)
    """
    from clarify_agents.registry import parse_spec

    return bool(getattr(parse_spec(spec)[0](), "batched", False))


@dataclass(eq=False)
class _Slot:
    """One actor and the work it has in flight (compared by identity)."""

    handle: Any
    busy: int = 0


class RayRunner:
    """Connects to (or starts) a Ray cluster and runs one agent's episodes on it at a time."""

    def __init__(
        self, address: str | None = None, *, actors: int | None = None, gpus: float = 0.0
    ) -> None:
        local = address in (None, "", "local")
        ray = require_ray(loopback=local)
        if actors is not None and actors < 1:
            raise ValueError("--ray-actors must be >= 1")
        if gpus < 0:
            raise ValueError("--ray-gpus must be >= 0")
        self.ray = ray
        self.actors = actors
        self.gpus = float(gpus)
        self.started = False
        runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(code_paths()), **forwarded_env()}}
        if ray.is_initialized():
            pass  # a caller (a test, a notebook) already connected: use that cluster
        elif local:
            # "local": a new cluster, whatever RAY_ADDRESS or a `ray start` cluster would say
            ray.init(
                address="local",
                include_dashboard=False,
                runtime_env=runtime_env,
                log_to_driver=False,
            )
            self.started = True
        else:
            target = check_ray_address(str(address))
            try:
                ray.init(address=target, runtime_env=runtime_env, log_to_driver=False)
            except Exception as exc:  # Ray's own: auth, version mismatch ...
                last = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
                raise RayAddressError(
                    f"could not join the Ray cluster at --ray {address}: {last[:300]}; {AUTH_HINT}"
                ) from None
        resources = ray.cluster_resources()
        self.cpus = float(resources.get("CPU", 1.0))
        self.cluster_gpus = float(resources.get("GPU", 0.0))
        #: Where the driver is connected (the GCS address).
        self.address = ray.get_runtime_context().gcs_address
        logger.info("ray: %s at %s, %s CPUs, %s GPUs", "started" if self.started else "joined",
                    self.address, self.cpus, self.cluster_gpus)  # fmt: skip

    def close(self) -> None:
        """Shut down the cluster this runner started (a joined one keeps running)."""
        if self.started:
            self.ray.shutdown()
            self.started = False

    def __enter__(self) -> RayRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def actor_class(self, threads: int, count: int, gpus: float = 0.0) -> Any:
        """:class:`EpisodeActor` as a Ray actor class: ``threads`` calls at once, a fair share of
        the cluster's CPUs for ``count`` actors, ``gpus`` GPUs each, not restarted (the driver
        replaces dead ones)."""
        return self.ray.remote(
            num_cpus=min(1.0, self.cpus / count),
            num_gpus=gpus,
            max_concurrency=threads,
            max_restarts=0,
        )(EpisodeActor)

    def gpu_actors(self, spec: str, requested: int | None, batches: int) -> int:
        """How many GPU actors a model agent gets (``--ray-actors``, else one per
        ``--ray-gpus`` share of the cluster's GPUs, at most one per batch); a
        :class:`RayAddressError` when the cluster has too few GPUs for them."""
        fit = int(self.cluster_gpus // self.gpus + 1e-9)
        count = requested or min(fit, batches)
        if count < 1 or count * self.gpus > self.cluster_gpus + 1e-9:
            raise RayAddressError(
                f"{spec}: {count or 1} actor(s) x --ray-gpus {self.gpus:g} need "
                f"{max(count, 1) * self.gpus:g} GPUs; the cluster at {self.address} has "
                f"{self.cluster_gpus:g}. Lower --ray-actors or --ray-gpus, or leave --ray-gpus out"
            )
        return count

    def run_agent(
        self,
        spec: str,
        kwargs: dict[str, Any],
        episodes: list[Episode],
        cfg: Any,
        tasks: list[Any],
        emit: Emit,
        failures: Failures,
        record: Callable[[dict[str, Any]], None] = lambda meta: None,
    ) -> None:
        """Run ``episodes`` of one agent with the settings of ``cfg`` (a
        :class:`~clarify_bench.harness.evaluate.BenchConfig`); emit each row as it comes back. ``record``
        gets the agent's metadata (see :func:`agent_metadata`) before the first episode."""
        concurrency, batch_size = cfg.concurrency, cfg.batch_size
        ray = self.ray
        gpus = self.gpus if self.gpus > 0 and model_agent(spec) else 0.0
        if gpus:
            count = self.gpu_actors(spec, self.actors, math.ceil(len(episodes) / batch_size))
        else:
            count = self.actors or max(1, min(concurrency, math.ceil(self.cpus), len(episodes)))
        per_actor = max(1, math.ceil(concurrency / count))
        cls = self.actor_class(per_actor, count, gpus)
        tasks_ref = ray.put(tasks)
        device = "cuda" if gpus else None

        def new_actor() -> Any:
            return cls.remote(
                spec, kwargs, cfg.env_id, cfg.env_kwargs, tasks_ref, cfg.threads, device
            )

        slots = [_Slot(new_actor()) for _ in range(count)]
        try:
            meta = ray.get(slots[0].handle.describe.remote())
            meta.pop("pid", None)
            meta.pop("gpu_ids", None)
            record({**meta, **({"ray_gpus_per_actor": gpus, "ray_actors": count} if gpus else {})})
            if meta["batched"]:
                chunks = [episodes[i : i + batch_size] for i in range(0, len(episodes), batch_size)]
                self._drive(slots, chunks, 1, new_actor, emit, failures, batch_size=batch_size)
            else:
                self._drive(slots, [[e] for e in episodes], per_actor, new_actor, emit, failures)
        finally:
            for slot in slots:
                ray.kill(slot.handle)

    def _drive(
        self,
        slots: list[_Slot],
        work: list[list[Episode]],
        per_actor: int,
        new_actor: Callable[[], Any],
        emit: Emit,
        failures: Failures,
        *,
        batch_size: int | None = None,
    ) -> None:
        """Keep every actor busy; requeue the work of an actor that died."""
        ray = self.ray
        from ray.exceptions import ActorUnavailableError, RayActorError, WorkerCrashedError

        lost = (RayActorError, ActorUnavailableError, WorkerCrashedError)
        pending = deque(work)
        attempts: dict[tuple[Episode, ...], int] = {}
        running: dict[Any, tuple[list[Episode], _Slot]] = {}
        while pending or running:
            for slot in slots:
                while pending and slot.busy < per_actor:
                    item = pending.popleft()
                    if batch_size is None:
                        ref = slot.handle.run.remote(item[0])
                    else:
                        ref = slot.handle.run_batch.remote(item, batch_size)
                    running[ref] = (item, slot)
                    slot.busy += 1
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                item, slot = running.pop(ref)
                slot.busy -= 1
                try:
                    result = ray.get(ref)
                except lost as exc:
                    self._replace(slots, slot, new_actor)
                    key = tuple(item)
                    attempts[key] = attempts.get(key, 0) + 1
                    if attempts[key] < MAX_ATTEMPTS:
                        logger.warning(
                            "ray: an actor died running %d episode(s) of %s; rerunning them (%s)",
                            len(item),
                            item[0].agent,
                            type(exc).__name__,
                        )
                        pending.appendleft(item)
                    else:
                        for episode in item:
                            failures.failure(episode, exc)
                    continue
                except Exception as exc:
                    cause = getattr(exc, "cause", None) or exc
                    if batch_size is not None:
                        raise cause from exc  # as without Ray: a batched agent's error stops the run
                    failures.failure(item[0], cause)
                    continue
                rows = result if batch_size is not None else [result]
                failures.success(item[0].agent)
                for row in rows:
                    emit(row)

    @staticmethod
    def _replace(slots: list[_Slot], dead: _Slot, new_actor: Callable[[], Any]) -> None:
        """A fresh actor in place of a dead one (once, however many of its calls fail)."""
        if dead in slots:
            slots[slots.index(dead)] = _Slot(new_actor())
