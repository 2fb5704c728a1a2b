//! Image decoding and PIL/torchvision-exact preprocessing: the release's `Image.open(p).convert("RGB")`
//! followed by `get_image_transform` (dataset/__init__.py of bytedance/lynx-llm).
//!
//! - [`load_image`] / [`decode_image`]: any supported file to RGB8, converted exactly as Pillow 13
//!   does (JPEG through libjpeg-turbo code, bit-exact with Pillow's decoder), plus the EXIF
//!   orientation (which the release ignores; we apply it, see [`decode_image`]).
//! - [`resize_bicubic`]: Pillow's `Image.resize((w, h), Image.BICUBIC)`, bit-exact.
//! - [`Preprocessor`]: the evaluation transform (resize shorter side, centre crop, normalise) and
//!   the training transform (RandomResizedCrop).

mod decode;
mod jpeg;
mod resize;
mod transform;

pub(crate) use decode::rgba_to_rgb;
pub use decode::{decode_image, load_image};
pub use resize::resize_bicubic;
pub use transform::{center_crop, Preprocessor, IMAGE_MEAN, IMAGE_STD, TRAIN_RATIO, TRAIN_SCALE};
