"""The per-machine host agent: a detached process, one per running machine, that forwards the ports the guest's
containers publish to the host (and, later, other watchdogs of a running machine).

`control` starts, finds and stops it (the orchestrator calls it: create/start start it, stop/kill/rm stop it);
`service` is the process itself (`python -m machine.agent`); its pid (`agent.pid`), log (`agent.log`) and status
(`ports.json`, read by `machine ports`) live in the machine directory. `portspec` is the pure part: which
forwards are wanted and what changes. The agent's crash never touches the VM: the VM is its own process; the
next `machine start` starts a new agent, which first removes the NAT rules its predecessor left behind.
"""
