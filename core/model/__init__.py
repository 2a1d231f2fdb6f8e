"""Model: splits, training (LightGBM), tuning, the run registry, batch scoring and the training job."""
