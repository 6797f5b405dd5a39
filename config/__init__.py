"""Configuration: settings (one TOML file plus KEYLINE_* environment variables) and the
inventory (YAML files describing customers, devices, circuits and SLA contracts)."""
