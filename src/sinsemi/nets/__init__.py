"""Networks (pure torch modules)."""
