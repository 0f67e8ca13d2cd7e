"""Studies built on the harness: performance, learning, user fidelity, red team, GPU check."""
