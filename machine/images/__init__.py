"""Boot images: the catalogue and the verified, resumable download cache."""
