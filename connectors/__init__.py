"""Adapters that read the three legacy systems as they are and return clean records."""
