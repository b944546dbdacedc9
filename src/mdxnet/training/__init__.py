"""Training of the four TFC-TDF-U-Net separators and the Mixer.

- `loop`: the one training loop (RMSProp, L1/MSE loss, AMP, validation, best/last checkpoints, resume, NaN guard),
  driven by a task object that supplies the model, the data and the validation score.
- `separator` / `mixer`: the two tasks.
- `validation`: whole-track chunked inference and the SDR used to pick the best checkpoint.
- `state`: what makes a resumed run identical to an uninterrupted one (RNG states, resume key, log trimming).
- `ddp`: torchrun / DistributedDataParallel wiring.
- `monitor`: dvclive metrics and the tqdm bar (rank 0 only).
"""
