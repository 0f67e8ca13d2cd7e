# Device call 1: keep the GGUF's first half on the machine, check the stack, a tiny CUDA smoke.
set -u; cd "$(dirname "$0")/.."
mkdir -p /root && cp .gpu/a /root/gguf_a
. .gpu/setup.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys,torch,transformers,peft,accelerate,gymnasium;print(sys.version.split()[0],torch.__version__,torch.cuda.is_available(),transformers.__version__,peft.__version__,accelerate.__version__,gymnasium.__version__)"
timeout 120 python3 -m benchmarks.learn_ppo --model tiny --updates 2 --episodes-per-batch 4 --minibatch-size 2 \
  --micro-batch-size 2 --ppo-epochs 1 --max-questions 2 --max-new-tokens 8 --seeds 0 --rewards new-info \
  --eval-tasks 3 --runs-dir /tmp/smoke/runs --results-dir /tmp/smoke/results --no-plot 2>&1 | tail -c 1500
echo "smoke rc=${PIPESTATUS[0]}"
