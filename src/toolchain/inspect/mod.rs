//! Binary inspection (being written).
