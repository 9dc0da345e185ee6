"""Training: the loss, the callbacks and `model.fit` driven by a config."""
