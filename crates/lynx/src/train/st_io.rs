//! Safetensors (de)serialisation of named candle tensors with string metadata, for the
//! trainable parameters and optimiser state of training checkpoints.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::{Error, Result};

fn to_st_dtype(dtype: DType) -> Option<Dtype> {
    Some(match dtype {
        DType::U8 => Dtype::U8,
        DType::U32 => Dtype::U32,
        DType::I64 => Dtype::I64,
        DType::BF16 => Dtype::BF16,
        DType::F16 => Dtype::F16,
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        _ => return None,
    })
}

fn from_st_dtype(dtype: Dtype) -> Option<DType> {
    Some(match dtype {
        Dtype::U8 => DType::U8,
        Dtype::U32 => DType::U32,
        Dtype::I64 => DType::I64,
        Dtype::BF16 => DType::BF16,
        Dtype::F16 => DType::F16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        _ => return None,
    })
}

/// The little-endian bytes of a tensor (copied to the host).
fn raw_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let t = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::U8 => t.to_vec1::<u8>()?,
        DType::U32 => t
            .to_vec1::<u32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::I64 => t
            .to_vec1::<i64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_bits().to_le_bytes())
            .collect(),
        DType::F32 => t
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F64 => t
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => {
            return Err(Error::Invalid(format!(
                "cannot save tensors of dtype {other:?}"
            )))
        }
    })
}

/// Serialises named tensors (names must be unique) and metadata into safetensors bytes.
pub fn to_bytes(
    tensors: &[(String, Tensor)],
    metadata: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let dtype = to_st_dtype(t.dtype()).ok_or_else(|| {
            Error::Invalid(format!(
                "tensor `{name}`: unsupported dtype {:?}",
                t.dtype()
            ))
        })?;
        raw.push((name.as_str(), dtype, t.dims().to_vec(), raw_bytes(t)?));
    }
    let views = raw
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (*name, v))
                .map_err(|e| Error::Invalid(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let meta = if metadata.is_empty() {
        None
    } else {
        Some(metadata)
    };
    safetensors::serialize(views, meta).map_err(|e| Error::Invalid(format!("safetensors: {e}")))
}

/// Named tensors and metadata read from safetensors bytes; `file` names the source in errors.
pub struct Loaded {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: HashMap<String, String>,
}

/// Parses safetensors bytes onto `device`.
pub fn from_bytes(bytes: &[u8], file: &str, device: &Device) -> Result<Loaded> {
    let st =
        SafeTensors::deserialize(bytes).map_err(|e| Error::parse(file, None, e.to_string()))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::parse(file, None, e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let mut tensors = HashMap::new();
    for (name, view) in st.tensors() {
        let dtype = from_st_dtype(view.dtype()).ok_or_else(|| {
            Error::weights(file, &name, format!("unsupported dtype {:?}", view.dtype()))
        })?;
        let t = Tensor::from_raw_buffer(view.data(), dtype, view.shape(), device)?;
        tensors.insert(name, t);
    }
    Ok(Loaded { tensors, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_bits_dtypes_and_metadata() {
        let dev = Device::Cpu;
        let a = Tensor::new(
            &[[1.5f32, -0.0, f32::MIN_POSITIVE], [3.0, 1e-30, -7.25]],
            &dev,
        )
        .unwrap();
        let b = Tensor::new(&[1.0f32, 2.0], &dev)
            .unwrap()
            .to_dtype(DType::BF16)
            .unwrap();
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        let bytes = to_bytes(&[("a".into(), a.clone()), ("b".into(), b)], meta).unwrap();
        let back = from_bytes(&bytes, "mem", &dev).unwrap();
        assert_eq!(back.metadata["k"], "v");
        let a2 = &back.tensors["a"];
        assert_eq!(a2.dims(), &[2, 3]);
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&a), bits(a2));
        assert_eq!(back.tensors["b"].dtype(), DType::BF16);
        assert!(from_bytes(&bytes[..bytes.len() - 1], "mem", &dev).is_err());
    }
}
