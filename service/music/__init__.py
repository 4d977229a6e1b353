"""Music without a network: keys, token choice, quality measures, sheet music. Pure functions."""
