"""Model engine: registry, architecture tables, hooks, executors. The only place torch runs."""
