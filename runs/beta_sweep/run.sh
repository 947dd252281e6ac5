#!/bin/bash
# beta sweep at equal compute (this book's experiment): c = 1, sort-transformer decoder,
# full training split, 6 epochs (cosine), evaluated every 2 epochs on the whole validation
# split and 2,000 prior samples. Sequential, one thread; each run resumes from its checkpoint.
cd "$(dirname "$0")/../.."
for b in 0.02 0.1 0.3 1.0; do
  .venv/bin/python -m invlatent.train graph-vae --channels 1 --decoder sort-transformer \
    --decoder-depth 3 --epochs 6 --eval-every 2 --beta $b --threads 1 \
    --checkpoint runs/beta_sweep/beta_$b.safetensors >> runs/beta_sweep/log.txt 2>&1
done
