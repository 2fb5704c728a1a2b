//! Perceiver resampler bridge of the release (`bridge.*`).
