//! Image decoding, PIL bicubic resize and the release's transforms against Pillow 13 /
//! torchvision 0.17 outputs recorded by tools/fixtures_preprocess.py.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;
use lynx::data::image::{decode_image, load_image, resize_bicubic, Preprocessor};
use lynx::Error;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/preprocess")
}

fn meta() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

fn expected() -> HashMap<String, Tensor> {
    candle_core::safetensors::load(fixtures().join("expected.safetensors"), &Device::Cpu).unwrap()
}

fn sha256(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn image_of(t: &Tensor) -> RgbImage {
    let (h, w, c) = t.dims3().unwrap();
    assert_eq!(c, 3);
    RgbImage::from_raw(
        w as u32,
        h as u32,
        t.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
    )
    .unwrap()
}

/// (max absolute difference, number of differing values)
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    let mut max = 0;
    let mut n = 0;
    for (x, y) in a.as_raw().iter().zip(b.as_raw()) {
        let d = x.abs_diff(*y);
        max = max.max(d);
        n += usize::from(d > 0);
    }
    (max, n)
}

fn load_fixture(name: &str) -> RgbImage {
    load_image(&fixtures().join("images").join(name)).unwrap()
}

#[test]
fn every_mode_decodes_like_pillow() {
    let meta = meta();
    let exp = expected();
    let images = meta["images"].as_object().unwrap();
    assert!(images.len() >= 30);
    let mut mismatched = Vec::new();
    for (name, info) in images {
        let img = load_fixture(name);
        let size = info["size"].as_array().unwrap();
        let (w, h) = (
            size[0].as_u64().unwrap() as u32,
            size[1].as_u64().unwrap() as u32,
        );
        let rotated = info["orientation"].as_u64().unwrap() >= 5;
        let want_dims = if rotated { (h, w) } else { (w, h) };
        assert_eq!(img.dimensions(), want_dims, "{name}");
        if let Some(t) = exp.get(&format!("rgb/{name}")) {
            let (max, n) = diff(&img, &image_of(t));
            if max > 0 {
                mismatched.push(format!(
                    "{name} ({}): max diff {max} in {n} values",
                    info["mode"]
                ));
            }
        } else if sha256(img.as_raw()) != info["rgb_sha256"].as_str().unwrap() {
            mismatched.push(format!("{name}: hash differs"));
        }
    }
    assert!(
        mismatched.is_empty(),
        "differs from Pillow: {mismatched:#?}"
    );
}

#[test]
fn exif_orientation_is_applied() {
    let upright = load_fixture("exif1.jpg");
    assert_eq!(upright.dimensions(), (24, 16));
    let (w, h) = upright.dimensions();
    let at = |img: &RgbImage, x: u32, y: u32| img.get_pixel(x, y).0;
    // 3: rotated 180 degrees.
    let r180 = load_fixture("exif3.jpg");
    assert_eq!(r180.dimensions(), (24, 16));
    assert_eq!(at(&r180, 0, 0), at(&upright, w - 1, h - 1));
    // 6: the camera was turned; the upright picture is the stored one rotated 90 degrees clockwise.
    let r90 = load_fixture("exif6.jpg");
    assert_eq!(r90.dimensions(), (16, 24));
    for (x, y) in [(0, 0), (5, 3), (23, 15), (10, 7)] {
        assert_eq!(at(&r90, h - 1 - y, x), at(&upright, x, y), "({x},{y})");
    }
    // The orientation of a PNG's eXIf chunk counts too.
    assert_eq!(load_fixture("exif6.png").dimensions(), (8, 12));
}

#[test]
fn resize_matches_pillow() {
    let meta = meta();
    let exp = expected();
    let mut worst = 0;
    let mut cases = 0;
    for (name, sizes) in meta["resize"].as_object().unwrap() {
        let src = load_fixture(name);
        assert_eq!(
            sha256(src.as_raw()),
            meta["images"][name]["rgb_sha256"].as_str().unwrap(),
            "{name}"
        );
        for s in sizes.as_array().unwrap() {
            let (w, h) = (s[0].as_u64().unwrap() as u32, s[1].as_u64().unwrap() as u32);
            let want = image_of(&exp[&format!("resize/{name}/{w}x{h}")]);
            let got = resize_bicubic(&src, w, h);
            let (max, n) = diff(&got, &want);
            println!("resize {name} -> {w}x{h}: max diff {max} ({n} values differ)");
            worst = worst.max(max);
            cases += 1;
        }
    }
    assert!(cases >= 15);
    // Bit-exact (the brief allows 1/255; none is needed).
    assert_eq!(worst, 0, "max difference from Pillow over all resize cases");
}

#[test]
fn eval_transform_matches_torchvision() {
    let meta = meta();
    let exp = expected();
    for case in meta["eval"].as_array().unwrap() {
        let (name, res) = (
            case[0].as_str().unwrap(),
            case[1].as_u64().unwrap() as usize,
        );
        let src = load_fixture(name);
        let p = Preprocessor::new(res);
        let crop = p.eval_crop(&src).unwrap();
        let (max, _) = diff(&crop, &image_of(&exp[&format!("evalcrop/{name}/{res}")]));
        println!("eval crop {name} @ {res}: max diff {max}");
        assert_eq!(max, 0, "{name} @ {res}");
        let t = p.eval(&src).unwrap();
        assert_eq!(t.dims(), &[3, res, res]);
        if let Some(want) = exp.get(&format!("eval/{name}/{res}")) {
            let d = (t - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap();
            let d = d.to_scalar::<f32>().unwrap();
            println!("eval tensor {name} @ {res}: max diff {d:e}");
            assert!(d <= 1e-5, "{name} @ {res}: {d}");
        }
    }
}

#[test]
fn eval_batch_stacks() {
    let p = Preprocessor::new(32);
    let imgs = vec![
        load_fixture("rgb_37x23.jpg"),
        load_fixture("l.png"),
        load_fixture("cmyk.jpg"),
    ];
    let batch = p.eval_batch(&imgs).unwrap();
    assert_eq!(batch.dims(), &[3, 3, 32, 32]);
    let second = batch
        .get(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let single = p
        .eval(&imgs[1])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(second, single);
    assert!(p.eval_batch(&[]).is_err());
}

#[test]
fn owleval_photographs_decode_like_pillow() {
    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/owleval/cases");
    for n in 1..=50 {
        let img = load_image(&cases.join(format!("{n}.jpg"))).unwrap();
        assert!(img.width() > 100 && img.height() > 100, "{n}.jpg");
    }
    for (name, entry) in meta()["owleval"].as_object().unwrap() {
        let img = load_image(&cases.join(name)).unwrap();
        let size = entry["size"].as_array().unwrap();
        assert_eq!(img.width() as u64, size[0].as_u64().unwrap(), "{name}");
        assert_eq!(img.height() as u64, size[1].as_u64().unwrap(), "{name}");
        assert_eq!(
            sha256(img.as_raw()),
            entry["rgb_sha256"].as_str().unwrap(),
            "{name}: decode"
        );
        for res in [224, 420] {
            let crop = Preprocessor::new(res).eval_crop(&img).unwrap();
            let want = entry[format!("evalcrop_{res}_sha256")].as_str().unwrap();
            assert_eq!(sha256(crop.as_raw()), want, "{name}: eval crop at {res}");
        }
    }
}

#[test]
fn broken_files_give_media_errors_naming_the_path() {
    for name in [
        "truncated.jpg",
        "truncated.png",
        "garbage.png",
        "not_an_image.txt",
    ] {
        let path = fixtures().join("images").join(name);
        let err = load_image(&path).unwrap_err();
        assert!(matches!(err, Error::Media { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(name), "{name}: {msg}");
        println!("{msg}");
    }
    let missing = fixtures().join("images/no_such_file.png");
    let err = load_image(&missing).unwrap_err();
    assert!(
        matches!(err, Error::Io { .. }) && err.to_string().contains("no_such_file.png"),
        "{err}"
    );
    let err = decode_image(b"\xff\xd8\xff\xe0 not really", "inline-bytes").unwrap_err();
    assert!(err.to_string().starts_with("inline-bytes: "), "{err}");
    assert!(decode_image(&[], "empty").is_err());
}
