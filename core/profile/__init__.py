"""Profile: the full-data scan of a dataset and what is read off it (alerts, missing values, correlations,
target analysis, the report)."""
