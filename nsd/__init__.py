"""nsd: a namespace daemon for data orchestration."""

__version__ = "0.1.0"
