"""Alarms: observations turned into faults an engineer can act on.

A short pipeline of named stages (observe, debounce, dedupe, correlate, suppress, publish)
in the manner of Prometheus Alertmanager; maintenance windows and acknowledgement.
"""
