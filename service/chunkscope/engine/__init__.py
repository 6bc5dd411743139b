"""Per-device model engine: registry, architecture adapters, hooks, executors. The only place torch runs."""
