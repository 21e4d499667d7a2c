"""`python -m machine.agent --store ROOT --name NAME --dir MACHINE_DIR`: run a machine's agent (see service)."""

from machine.agent.service import main

main()
