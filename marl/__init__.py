"""MAPPO training and evaluation of swarm policies on the GridSwarm simulator."""
