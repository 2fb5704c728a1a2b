//! Position-embedding interpolation against torch `F.interpolate(bicubic, align_corners=False)`
//! outputs recorded by tools/fixtures_preprocess.py.

use std::path::Path;

use candle_core::{DType, Device};
use lynx::model::vision::pos_embed::interpolate_pos_embed;

#[test]
fn matches_torch_bicubic() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/preprocess/expected.safetensors");
    let t = candle_core::safetensors::load(path, &Device::Cpu).unwrap();
    for (g, n) in [(3, 4), (3, 5), (3, 2), (16, 30)] {
        let input = &t[&format!("pos/in_{g}")];
        let want = &t[&format!("pos/out_{g}_{n}")];
        let got = interpolate_pos_embed(input, n).unwrap();
        assert_eq!(got.dims(), want.dims());
        let d = (&got - want)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        println!("pos_embed {g}->{n}: max diff {d:e}");
        assert!(d <= 1e-5, "{g}->{n}: {d}");
        // The input's dtype is kept.
        let half = interpolate_pos_embed(&input.to_dtype(DType::BF16).unwrap(), n).unwrap();
        assert_eq!(half.dtype(), DType::BF16);
    }
}
