"""The bottom layer: atomic file writing, YAML-safe values, optional packages, progress
reports and model wrappers. Imports nothing else from nrdseg."""
