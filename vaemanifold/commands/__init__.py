"""Sub-commands of the ``vaemanifold`` CLI (see vaemanifold.cli)."""
