"""Training the models: one loop, settings, the two trainers, batches, replicas."""
