"""The bottom layer: atomic file writing, YAML-safe values, optional packages, progress
reports, model wrappers and the process group's rank and size (``distributed``). Imports
nothing else from nrdseg."""
