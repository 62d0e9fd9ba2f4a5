//! Compiler families (being written).
