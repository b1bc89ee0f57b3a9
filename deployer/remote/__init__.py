"""The controller's side of the wire: SSH connections and the remote engine session."""
