//! EVA ViT vision encoder (EVA01-CLIP ViT-g/14 of the release).
