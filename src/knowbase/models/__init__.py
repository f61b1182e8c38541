"""Model protocols, backends and the registry that builds them from model strings."""
