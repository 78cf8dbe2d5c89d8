"""Seed ensembles: train K seeds of one config in one process.

`train_seeds` (api.py) trains the seeds vectorised with torch.func when the model,
loss and optimiser allow it (stacked.py, trainer.py), otherwise one after another,
and leaves K ordinary run folders behind (members.py).
"""
