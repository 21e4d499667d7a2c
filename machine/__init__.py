"""machine: lightweight Linux VMs as Docker hosts."""

__version__ = "0.1.0"
