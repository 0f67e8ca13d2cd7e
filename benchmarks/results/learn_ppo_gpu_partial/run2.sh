# Device call 2: learn_ppo at its default budget (30 updates of 16 episodes), the 4 runs in
# parallel on one GPU, greedy test episodes; then the same adapters under --eval-no-repeat-ngram 3.
set -u; cd "$(dirname "$0")/.."
. .gpu/setup.sh
OUT=${OUT:-/tmp/out}; W=${W:-/root/w}; TL=${TL:-420}; MODEL=${MODEL:-smollm2-135m}; EXTRA=${EXTRA:-}
mkdir -p "$W" "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
python3 -c "
from agents.models import load_causal_lm, resolve_base; import torch, time; t=time.time()
load_causal_lm('$MODEL', dtype=torch.bfloat16); print('model ready', round(time.time()-t,1), 's')" 2>&1 | tail -1
t0=$(date +%s)
for r in new-info paper; do for s in 0 1; do
  timeout "$TL" python3 -m benchmarks.learn_ppo --model "$MODEL" --threads 3 --rewards $r --seeds $s $EXTRA \
    --runs-dir "$W/runs" --results-dir "$W/$r-$s" --no-plot > "$W/$r-$s.log" 2>&1 &
done; done
wait; echo "training+greedy eval: $(( $(date +%s) - t0 )) s"
for r in new-info paper; do for s in 0 1; do
  tail -c 400 "$W/$r-$s.log"; echo
  [ -d "$W/$r-$s/learn_ppo/$r-seed$s/adapter" ] && timeout 120 python3 -m benchmarks.learn_ppo --threads 3 \
    --adapters "$W/$r-$s/learn_ppo" --rewards $r --seeds $s --eval-no-repeat-ngram 3 \
    --runs-dir "$W/runs-nr" --results-dir "$W/nr-$r-$s" --no-plot > "$W/nr-$r-$s.log" 2>&1 &
done; done
wait; echo "all: $(( $(date +%s) - t0 )) s"
for r in new-info paper; do for s in 0 1; do
  tar -C "$W" -czf "$OUT/$r-$s.tgz" --exclude='tokenizer*' --exclude='chat_template*' "$r-$s" "$r-$s.log" "runs/$r-seed$s/metrics.jsonl" \
    $( [ -d "$W/nr-$r-$s" ] && echo "nr-$r-$s nr-$r-$s.log" ) 2>/dev/null
done; done
ls -l "$OUT"
