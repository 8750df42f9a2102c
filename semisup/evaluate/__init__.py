"""Evaluation: metrics equal to scikit-learn's, decision rules, predictions and reports."""
