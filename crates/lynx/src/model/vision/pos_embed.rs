//! Position-embedding interpolation, exactly as torch `F.interpolate(mode="bicubic", align_corners=False)`.
