"""CycleResearcher: automated research improved by automated review."""
__version__ = "0.1.0"
