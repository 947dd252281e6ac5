#!/bin/bash
# The autoregressive decoder against the beta sweep's sort-transformer run at beta 0.02 (this
# book's experiment): c = 1, full training split, cosine schedule, evaluated every epoch on the
# whole validation split and 2,000 prior samples (greedy decoding). 5 epochs, because one
# epoch of this decoder costs about 1.2 epochs of the sort-transformer (measured), so 5 epochs
# are no more training compute than the baseline's 6. One thread; resumes from its checkpoint.
cd "$(dirname "$0")/../.."
.venv/bin/python -m invlatent.train graph-vae --channels 1 --decoder sort-autoregressive \
  --decoder-depth 3 --epochs 5 --eval-every 1 --beta 0.02 --threads 1 \
  --checkpoint runs/ar_sweep/ar_beta_0.02.safetensors >> runs/ar_sweep/log.txt 2>&1
