"""Runs: the run folder, the supervisor that starts the trainer, its summary, the queue, sweeps and estimates."""
