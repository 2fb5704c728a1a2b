//! Vision encoders (EVA ViT).

pub mod eva_vit;
pub mod pos_embed;
