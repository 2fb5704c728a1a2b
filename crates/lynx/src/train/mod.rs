//! Training (paper Sections 2.3 and 2.4).
