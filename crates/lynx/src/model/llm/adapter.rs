//! Lynx bottleneck adapter (`LLM.model.layers.{i}.output_adapter.*`, paper Figure 2b):
//! `h + scaling · up(silu(down(LayerNorm(h))))`, applied at the very end of a decoder layer.

use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

use crate::model::nn::{LayerNorm, Linear};
use crate::Result;

/// One adapter of width `hidden` and a bottleneck of `bottleneck` (`hidden / 2` in the release:
/// 4096 -> 2048).
pub struct Adapter {
    norm: LayerNorm,
    down: Linear,
    up: Linear,
    scaling: Tensor,
}

impl Adapter {
    pub fn new(hidden: usize, bottleneck: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            norm: LayerNorm::load(vb.pp("adapter_norm_before"), hidden, 1e-5)?,
            down: Linear::load(vb.pp("adapter_down"), hidden, bottleneck, true)?,
            up: Linear::load(vb.pp("adapter_up"), bottleneck, hidden, true)?,
            scaling: vb.get(1, "scaling")?,
        })
    }

    /// Returns `h` with the adapter's residual added.
    pub fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let y = self.norm.forward(h)?;
        let y = self.up.forward(&self.down.forward(&y)?.silu()?)?;
        Ok((h + y.broadcast_mul(&self.scaling)?)?)
    }
}
