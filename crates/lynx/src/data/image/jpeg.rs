//! JPEG decoding through libjpeg-turbo's code (the mozjpeg crate), which is what Pillow uses:
//! the same integer IDCT, fancy chroma upsampling and colour conversion, so the RGB values are
//! bit-exact with `Image.open(p).convert("RGB")` (pure-Rust decoders differ by up to 5 levels).

use std::cell::Cell;
use std::os::raw::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};
use mozjpeg::{ColorSpace, Decompress, Marker};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, JWRN_JPEG_EOF};

use crate::{Error, Result};

thread_local! {
    /// Set by [`on_message`] when libjpeg ran out of data: Pillow treats that as an error
    /// ("image file is truncated") while libjpeg only warns and pads the image with grey.
    static TRUNCATED: Cell<bool> = const { Cell::new(false) };
}

/// Decodes a JPEG to RGB with Pillow's colour handling and the EXIF orientation applied.
pub(super) fn decode_jpeg(bytes: &[u8], name: &str) -> Result<RgbImage> {
    TRUNCATED.with(|t| t.set(false));
    // libjpeg reports fatal errors by unwinding out of the C code (mozjpeg-sys is built with
    // -fexceptions); the payload is the message.
    let outcome = catch_unwind(AssertUnwindSafe(|| decode_inner(bytes)));
    let result = match outcome {
        Ok(r) => r,
        Err(payload) => Err(payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "libjpeg failed".to_string())),
    };
    let (img, orientation) =
        result.map_err(|msg| Error::media(name, format!("cannot decode JPEG: {msg}")))?;
    if TRUNCATED.with(|t| t.get()) {
        return Err(Error::media(
            name,
            "cannot decode JPEG: the file is truncated",
        ));
    }
    let mut dynamic = DynamicImage::ImageRgb8(img);
    dynamic.apply_orientation(orientation);
    Ok(dynamic.into_rgb8())
}

fn decode_inner(bytes: &[u8]) -> std::result::Result<(RgbImage, Orientation), String> {
    let io = |e: std::io::Error| e.to_string();
    let dec = Decompress::builder()
        .with_err(error_mgr())
        .with_markers(&[Marker::APP(1)])
        .from_mem(bytes)
        .map_err(io)?;
    let orientation = dec
        .markers()
        .filter(|m| m.marker == Marker::APP(1))
        .find_map(|m| m.data.strip_prefix(b"Exif\0\0"))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let (w, h) = (dec.width(), dec.height());
    let rgb: Vec<u8> = match dec.color_space() {
        ColorSpace::JCS_GRAYSCALE => {
            let mut s = dec.grayscale().map_err(io)?;
            let gray: Vec<u8> = s.read_scanlines().map_err(io)?;
            s.finish().map_err(io)?;
            gray.iter().flat_map(|&g| [g, g, g]).collect()
        }
        ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
            let mut s = dec.to_colorspace(ColorSpace::JCS_CMYK).map_err(io)?;
            let cmyk: Vec<u8> = s.read_scanlines().map_err(io)?;
            s.finish().map_err(io)?;
            cmyk.chunks_exact(4).flat_map(adobe_cmyk_to_rgb).collect()
        }
        ColorSpace::JCS_RGB | ColorSpace::JCS_YCbCr => {
            let mut s = dec.rgb().map_err(io)?;
            let px: Vec<u8> = s.read_scanlines().map_err(io)?;
            s.finish().map_err(io)?;
            px
        }
        other => return Err(format!("unsupported JPEG colour space {other:?}")),
    };
    let img = RgbImage::from_raw(w as u32, h as u32, rgb)
        .ok_or_else(|| "decoded pixel count does not match the image size".to_string())?;
    Ok((img, orientation))
}

/// Pillow reads every CMYK JPEG with Adobe's inverted polarity (rawmode "CMYK;I") and converts
/// with `cmyk2rgb`: channel = (255 - k) - (c * (255 - k)) / 255, the division rounded as
/// Pillow's MULDIV255 does. Here `px` holds the stored (inverted) bytes.
fn adobe_cmyk_to_rgb(px: &[u8]) -> [u8; 3] {
    let nk = px[3] as i32; // 255 - k, since k is stored inverted
    let channel = |stored: u8| {
        let c = 255 - stored as i32;
        let t = c * nk + 128;
        (nk - (((t >> 8) + t) >> 8)).clamp(0, 255) as u8
    };
    [channel(px[0]), channel(px[1]), channel(px[2])]
}

fn error_mgr() -> jpeg_error_mgr {
    // SAFETY: jpeg_std_error fills every field of a zeroed struct (plain C data and function
    // pointers) with libjpeg's defaults; we then replace the two handlers.
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        jpeg_std_error(&mut err);
        err.error_exit = Some(on_fatal);
        err.emit_message = Some(on_message);
        err
    }
}

extern "C-unwind" fn on_fatal(cinfo: &mut jpeg_common_struct) {
    let mut msg = String::from("libjpeg error");
    // SAFETY: `err` points at the error manager libjpeg is using; format_message writes at most
    // JMSG_LENGTH_MAX (80) bytes, NUL-terminated, into the buffer.
    unsafe {
        if let Some(err) = cinfo.err.as_ref() {
            if let Some(format) = err.format_message {
                // The binding declares the buffer immutable; libjpeg writes into it.
                type Writer = unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &mut [u8; 80]);
                let format: Writer = std::mem::transmute(format);
                let mut buffer = [0u8; 80];
                format(cinfo, &mut buffer);
                let text = buffer.split(|&c| c == 0).next().unwrap_or_default();
                msg = String::from_utf8_lossy(text).into_owned();
            }
        }
    }
    std::panic::resume_unwind(Box::new(msg));
}

extern "C-unwind" fn on_message(cinfo: &mut jpeg_common_struct, level: c_int) {
    // SAFETY: as above, `err` is libjpeg's live error manager.
    let code = unsafe { cinfo.err.as_ref() }.map(|e| e.msg_code);
    if level < 0 && code == Some(JWRN_JPEG_EOF as c_int) {
        TRUNCATED.with(|t| t.set(true));
    }
}

#[cfg(test)]
mod tests {
    use super::adobe_cmyk_to_rgb;

    #[test]
    fn cmyk_matches_pillow_formula() {
        // Values printed by Pillow 13: Image.fromarray(cmyk, "CMYK").convert("RGB").
        let cases = [
            ([0u8, 0, 0, 0], [255u8, 255, 255]),
            ([255, 0, 0, 0], [0, 255, 255]),
            ([100, 50, 20, 10], [149, 197, 226]),
            ([10, 20, 30, 200], [53, 51, 49]),
            ([255, 255, 255, 255], [0, 0, 0]),
            ([128, 128, 128, 128], [63, 63, 63]),
        ];
        for (cmyk, rgb) in cases {
            let stored = cmyk.map(|v| 255 - v);
            assert_eq!(adobe_cmyk_to_rgb(&stored), rgb, "cmyk {cmyk:?}");
        }
    }
}
