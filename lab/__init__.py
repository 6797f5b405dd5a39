"""Lab: the simulated network the demo runs on, and a root-only namespace lab for tests."""
