//! Building `Command` and `Action` messages (pure).
