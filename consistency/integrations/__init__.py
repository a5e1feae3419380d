"""Integrations with other libraries (optional layer: each module needs its library)."""
