"""First-party plugins, found through the ``powerstrip.plugins`` entry points like any other."""
