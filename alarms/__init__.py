"""Alarms: observations turned into faults an engineer can act on.

A short pipeline of named stages (observe, debounce, dedupe, correlate, suppress, publish)
in the manner of Prometheus Alertmanager; maintenance windows and acknowledgement.

- model.py: the alarm, its key, severity, timeline; maintenance windows
- rules.py: the `[alarms]` settings: thresholds with hysteresis, debounce, flapping
- stages.py: each stage as a plain function over a small state and a clock
- pipeline.py: AlarmPipeline, the stages in order over one state, and the publish stage
- service.py: AlarmService, the pipeline fed by "observation" events, with recovery
"""
