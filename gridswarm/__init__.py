"""GridSwarm: multi-agent coordination at scale. The command line lives in `gridswarm.cli`."""

__version__ = "0.1.0"
