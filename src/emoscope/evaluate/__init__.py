"""Evaluation: metrics reports, calibration, cross-dataset scoring."""
