#!/bin/bash
# The autoregressive decoder against the beta sweep's sort-transformer run at beta 0.02 (this
# book's experiment): c = 1, full training split, cosine schedule, evaluated every epoch on the
# whole validation split and 2,000 prior samples (greedy decoding). 5 epochs, because one
# training step of this decoder costs 1.17 times the matmul FLOPs of the sort-transformer's
# (FlopCounterMode, benchmarks/bench_graph_vae.py), so 5 epochs are about 5.9 of the
# baseline's 6. One thread; resumes from its checkpoint.
cd "$(dirname "$0")/../.."
.venv/bin/python -m invlatent.train graph-vae --channels 1 --decoder sort-autoregressive \
  --decoder-depth 3 --epochs 5 --eval-every 1 --beta 0.02 --threads 1 \
  --checkpoint runs/ar_sweep/ar_beta_0.02.safetensors >> runs/ar_sweep/log.txt 2>&1
