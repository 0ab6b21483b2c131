"""activations package."""
