"""Evaluate: a run's test split scored once, metrics, thresholds, slices and fairness, charts."""
