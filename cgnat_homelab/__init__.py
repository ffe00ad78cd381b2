"""The homelab role: the host behind CGNAT that dials the tunnel out."""
