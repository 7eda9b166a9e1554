"""Data files shipped with anybackprop (see README.md here for their sources and licences)."""
