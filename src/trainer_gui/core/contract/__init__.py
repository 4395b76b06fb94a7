"""contract package."""
