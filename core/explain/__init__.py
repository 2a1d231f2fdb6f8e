"""Explain: SHAP values, dependence and PDP/ICE, single rows and what-if, feature lineage, charts."""
