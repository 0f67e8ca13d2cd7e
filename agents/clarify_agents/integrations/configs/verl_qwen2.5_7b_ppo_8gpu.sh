#!/usr/bin/env bash
# PPO (actor-critic, GAE) for Qwen2.5-7B-Instruct on ProactiveGather with verl 0.9.1, one node of
# 8 GPUs: the paper's recipe (Huang et al. 2025: 3 epochs, 256 episodes per batch, minibatch 16,
# clip 0.2, grad-norm 1.0, actor lr 2e-5, critic lr 1e-4). NOT run here (no GPU): every key below
# is checked against verl 0.9.1's config by tests/agents/test_integrations_verl.py.
#
#   python -m clarify_agents.integrations.dataset --engine verl --out $HOME/data/proactive_gather \
#       --tasks /path/to/dolomites_examples.dev.public.jsonl --seeds 1
#   bash agents/clarify_agents/integrations/configs/verl_qwen2.5_7b_ppo_8gpu.sh
#
# verl 0.9.1 trains with its v1 trainer by default (trainer.use_v1=true); add trainer.use_v1=false
# for the legacy one. Each question's reward sits on its own last token with either: the
# agent_loop_manager_class below builds verl's own manager under v1 and ours under the legacy
# trainer. The Ray workers import clarify_agents: install clarify-gym in verl's environment
# (pip install "clarify-gym[verl]"), or run from the checkout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data=${DATA:-$HOME/data/proactive_gather}

python3 -m verl.trainer.main_ppo \
    algorithm.adv_estimator=gae \
    algorithm.gamma=1.0 \
    algorithm.lam=1.0 \
    algorithm.use_kl_in_reward=False \
    data.train_files="$data/train.parquet" \
    data.val_files="$data/test.parquet" \
    data.return_raw_chat=True \
    data.train_batch_size=256 \
    data.max_prompt_length=2048 \
    data.max_response_length=2048 \
    data.filter_overlong_prompts=True \
    data.truncation=error \
    actor_rollout_ref.model.path=Qwen/Qwen2.5-7B-Instruct \
    actor_rollout_ref.model.use_remove_padding=True \
    actor_rollout_ref.model.enable_gradient_checkpointing=True \
    actor_rollout_ref.actor.optim.lr=2e-5 \
    actor_rollout_ref.actor.ppo_mini_batch_size=16 \
    actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=2 \
    actor_rollout_ref.actor.clip_ratio=0.2 \
    actor_rollout_ref.actor.grad_clip=1.0 \
    actor_rollout_ref.actor.use_kl_loss=False \
    actor_rollout_ref.actor.fsdp_config.param_offload=False \
    actor_rollout_ref.actor.fsdp_config.optimizer_offload=False \
    actor_rollout_ref.rollout.name=vllm \
    actor_rollout_ref.rollout.mode=async \
    actor_rollout_ref.rollout.tensor_model_parallel_size=2 \
    actor_rollout_ref.rollout.gpu_memory_utilization=0.5 \
    actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu=4 \
    actor_rollout_ref.rollout.n=1 \
    actor_rollout_ref.rollout.agent.num_workers=8 \
    actor_rollout_ref.rollout.agent.agent_loop_config_path="$here/verl_agent_loop.yaml" \
    +actor_rollout_ref.rollout.agent.agent_loop_manager_class=clarify_agents.integrations.verl.agent_loop.ProactiveGatherAgentLoopManager \
    critic.optim.lr=1e-4 \
    critic.model.path=Qwen/Qwen2.5-7B-Instruct \
    critic.model.use_remove_padding=True \
    critic.model.enable_gradient_checkpointing=True \
    critic.ppo_micro_batch_size_per_gpu=2 \
    critic.grad_clip=1.0 \
    trainer.critic_warmup=0 \
    trainer.logger='["console"]' \
    trainer.project_name=clarify_gym \
    trainer.experiment_name=qwen2.5_7b_ppo_proactive_gather \
    trainer.n_gpus_per_node=8 \
    trainer.nnodes=1 \
    trainer.save_freq=50 \
    trainer.test_freq=25 \
    trainer.total_epochs=3 "$@"
