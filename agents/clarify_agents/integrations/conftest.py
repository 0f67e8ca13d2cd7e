"""Doctest collection: skip the adapter modules whose engine is not installed (each is an
optional extra; their tests skip with the reason)."""

from importlib.util import find_spec

collect_ignore = [
    "skyrl_main.py",  # SkyRL's trainer entry point, no doctests: Python >= 3.12, GPUs
    *(
        path
        for path, module in (
            ("skyrl.py", "skyrl_gym"),
            ("skyrl_config.py", "skyrl"),
            ("verl/agent_loop.py", "verl"),
        )
        if find_spec(module) is None
    ),
]
