"""Keelwatch: a SIEM for Kubernetes and cloud-native environments."""

__version__ = "0.1.0"
