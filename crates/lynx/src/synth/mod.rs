//! The generated visual world (issue 4).
