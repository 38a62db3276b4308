"""Estimators: compiled flat-vector functions, ML (fit_ml), NUTS (sample), relabelling, results and summaries; no family names."""
