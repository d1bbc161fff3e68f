"""A C2SP tlog-witness: another agency's process that cosigns the log's checkpoints."""
