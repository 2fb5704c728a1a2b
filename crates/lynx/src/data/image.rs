//! Image decoding and PIL/torchvision-exact preprocessing.
