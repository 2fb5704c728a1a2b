//! Lynx bottleneck adapter (`output_adapter.*`).
