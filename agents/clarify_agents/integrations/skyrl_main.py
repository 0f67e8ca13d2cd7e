"""SkyRL training entry point with the ProactiveGather env registered (``python -m
clarify_agents.integrations.skyrl_main KEY=VALUE ...``, SkyRL's own overrides).

SkyRL builds envs with ``skyrl_gym.make`` inside its training task, a Ray task of its own, so the
env must be registered there; this module does what SkyRL's examples do for a custom env
(``examples/train/multiply/main_multiply.py`` in NovaSky-AI/SkyRL): register, then run
``BasePPOExp``. The command line is parsed with
:class:`~clarify_agents.integrations.skyrl_config.ProactiveGatherTrainConfig`, SkyRL's config
plus ``environment.skyrl_gym.proactive_gather.{env_id,env_kwargs}``. It needs SkyRL's trainer
(``pip install "skyrl[skyrl-train]"``, GPUs); the training run itself was not run on this
machine (no GPU). The example command is
``agents/clarify_agents/integrations/configs/skyrl_qwen2.5_7b_ppo_lora.sh``.
"""

from __future__ import annotations

import sys

import ray
from skyrl.train.entrypoints.main_base import BasePPOExp, validate_cfg
from skyrl.train.utils import initialize_ray

from clarify_agents.integrations.skyrl_config import ProactiveGatherTrainConfig


@ray.remote(num_cpus=1)
def skyrl_entrypoint(cfg: ProactiveGatherTrainConfig) -> None:
    from clarify_agents.integrations.skyrl import register

    register()  # in the process that calls skyrl_gym.make
    BasePPOExp(cfg).run()


def main() -> None:
    cfg = ProactiveGatherTrainConfig.from_cli_overrides(sys.argv[1:])
    validate_cfg(cfg)
    initialize_ray(cfg)
    ray.get(skyrl_entrypoint.remote(cfg))


if __name__ == "__main__":
    main()
