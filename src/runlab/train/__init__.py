"""Training: the Trainer, its events and callbacks."""
