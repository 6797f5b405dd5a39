"""Keyline: circuit, device and SLA monitoring for a telecom operator's key accounts.

This package is the composition root: the command line and the wiring that builds the store,
the collectors, the engines and the portal. Domain logic lives in the sibling packages
(config, collectors, store, topology, alarms, sla, portal, lab).
"""

__version__ = "0.1.0"
