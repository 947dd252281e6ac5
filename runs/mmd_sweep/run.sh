#!/bin/bash
# orbit-MMD sweep at equal compute (this book's experiment): as runs/beta_sweep (c = 1,
# sort-transformer, full training split, 6 epochs, cosine, beta 0.02), with the MMD between
# sorted codes and sorted prior draws weighted by 10 and by 100. Sequential, one thread.
cd "$(dirname "$0")/../.."
while pgrep -f "runs/beta_sweep/run.sh" > /dev/null; do sleep 30; done
for m in 10 100; do
  .venv/bin/python -m invlatent.train graph-vae --channels 1 --decoder sort-transformer \
    --decoder-depth 3 --epochs 6 --eval-every 2 --beta 0.02 --mmd $m --threads 1 \
    --checkpoint runs/mmd_sweep/mmd_$m.safetensors >> runs/mmd_sweep/log.txt 2>&1
done
