"""fileset package."""
