#!/usr/bin/env bash
# Critic PPO (GAE) with LoRA on policy and critic for Qwen2.5-7B-Instruct on ProactiveGather with
# SkyRL: each question's reward on that turn's last token (SkyRL's per-step rewards). One node of
# 8 GPUs; batch and learning rates follow the paper (Huang et al. 2025: 256 episodes per batch,
# minibatch 16, 3 epochs). NOT run here: SkyRL's trainer needs Python >= 3.12 and GPUs; the keys
# follow SkyRL's examples/train/lora/run_qwen2_5_0.5b_gsm8k_ppo_lora.sh (NovaSky-AI/SkyRL a956457).
#
#   python -m clarify_agents.integrations.dataset --engine skyrl --out $HOME/data/proactive_gather \
#       --tasks /path/to/dolomites_examples.dev.public.jsonl --env-kwargs '{"max_questions": 5}'
#   bash agents/clarify_agents/integrations/configs/skyrl_qwen2.5_7b_ppo_lora.sh
#
# generator.max_turns must be at least max_questions + 1 (the STOP turn).
set -euo pipefail
data=${DATA:-$HOME/data/proactive_gather}
gpus=${NUM_GPUS:-8}

python -m clarify_agents.integrations.skyrl_main \
  data.train_data="['$data/train.parquet']" \
  data.val_data="['$data/test.parquet']" \
  environment.env_class=proactive_gather \
  generator.max_turns=6 \
  generator.batched=false \
  generator.use_conversation_multi_turn=true \
  generator.n_samples_per_prompt=1 \
  generator.sampling_params.max_generate_length=256 \
  generator.inference_engine.backend=vllm \
  generator.inference_engine.run_engines_locally=true \
  generator.inference_engine.num_engines=$gpus \
  generator.inference_engine.tensor_parallel_size=1 \
  generator.inference_engine.weight_sync_backend=nccl \
  generator.inference_engine.gpu_memory_utilization=0.6 \
  trainer.algorithm.advantage_estimator="gae" \
  trainer.algorithm.use_kl_loss=true \
  trainer.policy.model.path="Qwen/Qwen2.5-7B-Instruct" \
  trainer.critic.model.path="Qwen/Qwen2.5-7B-Instruct" \
  trainer.policy.model.lora.rank=32 \
  trainer.policy.model.lora.alpha=32 \
  trainer.critic.model.lora.rank=32 \
  trainer.critic.model.lora.alpha=32 \
  trainer.policy.optimizer_config.lr=2.0e-5 \
  trainer.critic.optimizer_config.lr=1.0e-4 \
  trainer.strategy=fsdp \
  trainer.placement.colocate_all=true \
  trainer.placement.policy_num_gpus_per_node=$gpus \
  trainer.placement.critic_num_gpus_per_node=$gpus \
  trainer.placement.ref_num_gpus_per_node=$gpus \
  trainer.epochs=3 \
  trainer.train_batch_size=256 \
  trainer.policy_mini_batch_size=16 \
  trainer.critic_mini_batch_size=16 \
  trainer.micro_forward_batch_size_per_gpu=2 \
  trainer.micro_train_batch_size_per_gpu=2 \
  trainer.max_prompt_length=2048 \
  trainer.eval_before_train=false \
  trainer.eval_interval=25 \
  trainer.ckpt_interval=50 \
  trainer.logger=console \
  trainer.project_name=clarify_gym \
  trainer.run_name=qwen2.5_7b_ppo_lora_proactive_gather \
  trainer.resume_mode=null \
  trainer.ckpt_path="$HOME/ckpts/proactive_gather" \
  "$@"
