"""Topology: the graph of devices, ports and links, and each circuit's path across it.

Built from the inventory's declared links plus what LLDP discovery finds; answers which
circuits and customers depend on a device, port or link.
"""
