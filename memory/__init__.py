"""Swarm policy networks (torch): encoder, SRMT and baselines. Imports nothing else of GridSwarm."""
