"""The docker client side: docker contexts, shell environment lines, the docker CLI plugin."""
