"""fileset/generate package."""
