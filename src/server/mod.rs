//! The embedded REAPI server (`recast serve`).
