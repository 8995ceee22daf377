"""Evaluation: the head-to-head solver benchmark and its problems and reports."""
