//! HTTP serving for Lynx.
