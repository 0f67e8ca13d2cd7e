"""One process of a multi-process PPO run on CPUs (gloo), started by ``torchrun`` from the tests.

``python -m torch.distributed.run --nproc-per-node 2 tests/agents/dist_worker.py MODE OUT TASKS [JSON]``

MODE is ``ddp``, ``fsdp`` (an accelerate config file's FSDP plugin) or ``zero-cast`` (every
weight cast to bf16 the way DeepSpeed ZeRO casts the engine's module). accelerate turns FSDP on
only on accelerators (GPU, XPU, ...): on CPUs ``Accelerator`` is MULTI_CPU whatever the config
says. :class:`CpuFsdpAccelerator` sets the state ``accelerate launch --config_file fsdp.yaml``
would set on GPUs, so that ``accelerator.prepare`` runs accelerate's real FSDP code
(``fully_shard`` over gloo) and the trainer's real loop runs on the sharded model.

Each process writes ``OUT/rank-<r>.json``: the metrics of each update, whether the base weights
changed, and the dtypes the model ended up with.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import torch
import yaml

CONFIGS = (
    Path(__file__).resolve().parents[2] / "agents" / "clarify_agents" / "ppo" / "accelerate_configs"
)
# accelerate launch's env names for the fsdp_config keys (accelerate/utils/launch.py)
_FSDP_ENV = {
    "fsdp_version": "FSDP_VERSION",
    "fsdp_reshard_after_forward": "FSDP_RESHARD_AFTER_FORWARD",
    "fsdp_sharding_strategy": "FSDP_SHARDING_STRATEGY",
    "fsdp_offload_params": "FSDP_OFFLOAD_PARAMS",
    "fsdp_auto_wrap_policy": "FSDP_AUTO_WRAP_POLICY",
    "fsdp_transformer_layer_cls_to_wrap": "FSDP_TRANSFORMER_CLS_TO_WRAP",
    "fsdp_backward_prefetch": "FSDP_BACKWARD_PREFETCH",
    "fsdp_state_dict_type": "FSDP_STATE_DICT_TYPE",
    "fsdp_forward_prefetch": "FSDP_FORWARD_PREFETCH",
    "fsdp_use_orig_params": "FSDP_USE_ORIG_PARAMS",
    "fsdp_cpu_ram_efficient_loading": "FSDP_CPU_RAM_EFFICIENT_LOADING",
    "fsdp_sync_module_states": "FSDP_SYNC_MODULE_STATES",
    "fsdp_activation_checkpointing": "FSDP_ACTIVATION_CHECKPOINTING",
}


# accelerate launch's env names for the deepspeed_config keys (accelerate/utils/launch.py)
_DEEPSPEED_ENV = {
    "zero_stage": "ACCELERATE_DEEPSPEED_ZERO_STAGE",
    "gradient_clipping": "ACCELERATE_GRADIENT_CLIPPING",
    "offload_optimizer_device": "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE",
    "offload_param_device": "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE",
    "zero3_init_flag": "ACCELERATE_DEEPSPEED_ZERO3_INIT",
    "zero3_save_16bit_model": "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL",
}


def launch_env(config_file: Path) -> dict[str, str]:
    """The environment ``accelerate launch --config_file config_file`` gives each process (for
    an FSDP or a DeepSpeed config)."""
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    fsdp = config["distributed_type"] == "FSDP"
    section, names = ("fsdp_config", _FSDP_ENV) if fsdp else ("deepspeed_config", _DEEPSPEED_ENV)
    env = {
        "ACCELERATE_USE_FSDP" if fsdp else "ACCELERATE_USE_DEEPSPEED": "true",
        "ACCELERATE_MIXED_PRECISION": config["mixed_precision"],
    }
    for key, value in config[section].items():
        if key in names:
            env[names[key]] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def _cpu_deepspeed_accelerator() -> type:
    from accelerate import Accelerator, DeepSpeedPlugin, PartialState
    from accelerate.utils import DistributedType

    class CpuDeepSpeedAccelerator(Accelerator):
        """An Accelerator on CPUs whose state is DeepSpeed's, as AcceleratorState sets it on
        GPUs: the plugin from the environment, mixed precision left to DeepSpeed (no
        autocast)."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            plugin = DeepSpeedPlugin()  # reads the ACCELERATE_DEEPSPEED_* environment
            plugin.set_mixed_precision(self.state.mixed_precision)
            plugin.select(_from_accelerator_state=True)
            self.state.deepspeed_plugins = plugin
            self.state.distributed_type = DistributedType.DEEPSPEED
            PartialState().distributed_type = DistributedType.DEEPSPEED
            self.state._mixed_precision = "no"  # what AcceleratorState does for DeepSpeed
            self.native_amp = False

    return CpuDeepSpeedAccelerator


def _cpu_fsdp_accelerator() -> type:
    from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
    from accelerate.utils import DistributedType

    class CpuFsdpAccelerator(Accelerator):
        """An Accelerator on CPUs whose state is FSDP, as it would be on GPUs."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* environment
            if self.mixed_precision != "no":
                plugin.set_mixed_precision(self.mixed_precision)
            self.state.fsdp_plugin = plugin
            # every AcceleratorState() copies PartialState's fields back: set it in both
            self.state.distributed_type = DistributedType.FSDP
            PartialState().distributed_type = DistributedType.FSDP

    return CpuFsdpAccelerator


def _zero_cast(trainer) -> None:
    """DeepSpeed's engine calls ``module.bfloat16()`` on the whole model (bf16 enabled) and
    keeps fp32 master weights in its optimizer: do the same cast right after ``prepare``."""
    original = trainer.setup

    def setup(cfg, **kwargs):
        state = original(cfg, **kwargs)
        state.model.bfloat16()
        return state

    trainer.setup = setup


def base_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full copies of the frozen weights: FSDP2 shards are gathered (``full_tensor``), ZeRO-3
    partitions too (``GatheredParameters``; outside a forward a ZeRO-3 weight is empty)."""
    frozen = [(n, p) for n, p in model.named_parameters() if not p.requires_grad]
    gather = contextlib.nullcontext()
    if any(hasattr(p, "ds_id") for _, p in frozen):
        import deepspeed

        gather = deepspeed.zero.GatheredParameters([p for _, p in frozen])
    with gather:
        return {
            n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().float().clone()
            for n, p in frozen
        }


def main(mode: str, out: str, tasks: str, overrides: str = "{}") -> None:
    torch.set_num_threads(1)
    import accelerate
    from clarify_agents.ppo import trainer
    from clarify_agents.ppo.presets import preset

    if mode == "fsdp":
        for key, value in launch_env(CONFIGS / "fsdp.yaml").items():
            os.environ.setdefault(key, value)
        # sync_module_states broadcasts from a GPU; every process here builds the same weights
        os.environ["FSDP_SYNC_MODULE_STATES"] = "false"
        accelerate.Accelerator = _cpu_fsdp_accelerator()
    elif mode in ("zero2", "zero3"):
        for key, value in launch_env(CONFIGS / f"{mode}.yaml").items():
            os.environ.setdefault(key, value)
        accelerate.Accelerator = _cpu_deepspeed_accelerator()
    elif mode == "zero-cast":
        _zero_cast(trainer)
    elif mode != "ddp":
        raise SystemExit(f"unknown mode {mode!r}: ddp, fsdp, zero2, zero3 or zero-cast")
    settings = {
        "output_dir": str(Path(out) / "run"),
        "tasks": tasks,
        "split": None,
        "tensorboard": False,
        "progress": False,
        "dtype": "bfloat16",
        # DeepSpeed keeps accelerate's mixed precision off (no autocast): its engine casts
        "mixed_precision": "no" if mode == "zero-cast" else "bf16",
        "updates": 2,
        "save_every": 2,
    }
    cfg = preset("tiny").replace(**{**settings, **json.loads(overrides)})
    state = trainer.setup(cfg)
    base_before = base_weights(state.policy)
    history = [trainer.ppo_iteration(state) for _ in range(cfg.log.updates)]
    checkpoint = trainer.save_checkpoint(state)
    rank = state.accelerator.process_index
    base_after = base_weights(state.policy)
    changed = [n for n in base_before if not torch.equal(base_after[n], base_before[n])]
    report = {
        "world": state.accelerator.num_processes,
        "micro_batch": state.micro_batch,
        "grad_accum_steps": state.accelerator.gradient_accumulation_steps,
        "distributed_type": str(state.accelerator.distributed_type),
        "history": history,
        "base_changed": changed,
        "checkpoint": str(checkpoint),
        "float32_params": [
            n for n, p in state.model.named_parameters() if p.dtype == torch.float32
        ],
        "dtypes": sorted({str(p.dtype) for p in state.model.parameters()}),
    }
    (Path(out) / f"rank-{rank}.json").write_text(json.dumps(report), encoding="utf-8")
    state.accelerator.end_training()


if __name__ == "__main__":
    main(*sys.argv[1:5])
