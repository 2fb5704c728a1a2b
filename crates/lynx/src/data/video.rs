//! Video reading and the release frame sampling.
