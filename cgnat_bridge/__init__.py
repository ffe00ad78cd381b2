"""The bridge role: the public host that forwards everything through the tunnel."""
