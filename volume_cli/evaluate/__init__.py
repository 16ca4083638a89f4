"""Metrics and evaluation runners."""
