"""Docker Swarm clusters: cluster commands, per-node swarm commands, the node-to-node network."""
