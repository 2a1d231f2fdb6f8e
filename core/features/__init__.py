"""Features: recipes (steps compiled to SQL), their kept copies, the live preview and writing a recipe's output."""
