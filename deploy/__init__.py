"""Export of trained policies to drones: ONNX, C99, manifests, waypoint plans."""
