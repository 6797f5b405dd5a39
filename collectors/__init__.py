"""Collectors: the product's senses.

SNMP polls (pysnmp asyncio), CLI sessions (netmiko + TextFSM) and trap reception turn what
devices say into samples (numbers over time: rates, utilization, errors) and observations
(changes of state: a port went down, a device stopped answering). Collectors know nothing of
alarms or tickets; they hand samples and observations to the store.
"""
