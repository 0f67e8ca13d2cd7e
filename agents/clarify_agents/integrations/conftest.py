"""Doctest collection: skip the adapter modules whose engine is not installed (each is an
optional extra; their tests skip with the reason)."""

from importlib.util import find_spec

collect_ignore = [
    path
    for path, module in (
        ("skyrl.py", "skyrl_gym"),
        ("skyrl_main.py", "skyrl"),  # SkyRL's trainer: Python >= 3.12 and GPUs
        ("verl/agent_loop.py", "verl"),
    )
    if find_spec(module) is None
]
