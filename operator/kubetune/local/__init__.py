"""Running experiments on one machine, trials as local processes."""
