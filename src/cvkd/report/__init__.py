"""Reporting: what a model costs (profile), result tables and plots."""
