//! The YAML configuration of the official `configs/LYNX.yaml`, with overrides.
