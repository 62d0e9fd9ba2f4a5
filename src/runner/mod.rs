//! Runs one action: materialize, execute, collect.
