"""``python -m clarify_gym.testing``: run the fake OpenAI-compatible server until interrupted."""

from __future__ import annotations

import argparse
import sys
import threading

from clarify_gym.testing.server import FakeLLMServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per chat request")
    parser.add_argument("--model", default="fake-model", help="the model /v1/models lists")
    parser.add_argument(
        "--messy-agent", action="store_true", help="agent replies as real models write them"
    )
    args = parser.parse_args(argv)
    server = FakeLLMServer(
        latency=args.latency,
        model=args.model,
        messy_agent=args.messy_agent,
        host=args.host,
        port=args.port,
    ).start()
    print(server.url, flush=True)  # the first line: the base URL (read by scripts)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
