"""Shared folders: host folders mounted into the guest (spec: what the user asks for; mechanisms: virtiofs,
9p, chosen per driver and host; boot: what the guest reported)."""
