//! Shared layers: frozen linear without weight gradient, differentiable norms.
