//! A serialisable deterministic RNG (ChaCha8) for data sampling, prompt choice and augmentation,
//! so that a resumed run (paper 2.3/2.4 training) draws exactly what the uninterrupted run would.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The complete state of a [`TrainRng`]: key (seed), stream and position in the keystream.
///
/// `word_pos` is a decimal string because it is a 128-bit counter and JSON numbers are not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The 32-byte ChaCha key as 64 lowercase hex digits.
    pub seed: String,
    /// The ChaCha stream id.
    pub stream: u64,
    /// The position in the keystream, in 32-bit words.
    pub word_pos: String,
}

/// ChaCha8 whose position can be saved in a checkpoint and restored bit-exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainRng {
    inner: ChaCha8Rng,
}

impl TrainRng {
    /// A generator for `seed` on an independent `stream` (e.g. one stream for data mixing,
    /// another for augmentation), so consumers do not shift each other's draws.
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut inner = ChaCha8Rng::seed_from_u64(seed);
        inner.set_stream(stream);
        Self { inner }
    }

    /// Saves the generator's full state.
    pub fn state(&self) -> RngState {
        let seed = self.inner.get_seed();
        RngState {
            seed: seed.iter().map(|b| format!("{b:02x}")).collect(),
            stream: self.inner.get_stream(),
            word_pos: self.inner.get_word_pos().to_string(),
        }
    }

    /// Rebuilds a generator from [`TrainRng::state`]; `what` names the state in errors.
    pub fn from_state(state: &RngState, what: &str) -> Result<Self> {
        let bad = |msg: &str| Error::Invalid(format!("{what}: RNG state: {msg}"));
        let hex = state.seed.as_bytes();
        if hex.len() != 64 {
            return Err(bad("seed must be 64 hex digits"));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            let pair =
                std::str::from_utf8(&hex[2 * i..2 * i + 2]).map_err(|_| bad("seed is not hex"))?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad("seed is not hex"))?;
        }
        let word_pos: u128 = state
            .word_pos
            .parse()
            .map_err(|_| bad("word_pos is not an integer"))?;
        let mut inner = ChaCha8Rng::from_seed(seed);
        inner.set_stream(state.stream);
        inner.set_word_pos(word_pos);
        Ok(Self { inner })
    }

    /// A uniform index in `0..n` (n > 0), by rejection so it has no modulo bias and is the
    /// same on every platform.
    pub fn index(&mut self, n: usize) -> usize {
        debug_assert!(n > 0);
        let n = n as u64;
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let v = self.inner.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }

    /// A uniform f64 in [0, 1) from the top 53 bits of one draw.
    pub fn unit_f64(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Fisher-Yates shuffle of `items`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.index(i + 1);
            items.swap(i, j);
        }
    }
}

impl RngCore for TrainRng {
    fn next_u32(&mut self) -> u32 {
        self.inner.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.inner.next_u64()
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.inner.fill_bytes(dst)
    }
}

/// Mixes a base seed with labels (dataset index, epoch, ...) into a new seed (splitmix64
/// finaliser per label), so derived shuffles are independent yet reproducible.
pub fn derive_seed(seed: u64, labels: &[u64]) -> u64 {
    let mut h = seed ^ 0x6c79_6e78_7273_0001;
    for &label in labels {
        h = splitmix(h ^ splitmix(label.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trip_continues_the_same_sequence() {
        let mut a = TrainRng::new(1234, 7);
        for _ in 0..37 {
            a.next_u32();
        }
        let state = a.state();
        let json = serde_json::to_string(&state).unwrap();
        let mut b = TrainRng::from_state(&serde_json::from_str(&json).unwrap(), "test").unwrap();
        let xs: Vec<u64> = (0..50).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..50).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_eq!(state.stream, 7);
    }

    #[test]
    fn streams_and_seeds_differ() {
        let mut a = TrainRng::new(1, 0);
        let mut b = TrainRng::new(1, 1);
        let mut c = TrainRng::new(2, 0);
        let (x, y, z) = (a.next_u64(), b.next_u64(), c.next_u64());
        assert_ne!(x, y);
        assert_ne!(x, z);
        assert_ne!(derive_seed(5, &[0, 1]), derive_seed(5, &[1, 0]));
        assert_eq!(derive_seed(5, &[3, 4]), derive_seed(5, &[3, 4]));
    }

    #[test]
    fn index_is_in_range_and_roughly_uniform() {
        let mut r = TrainRng::new(9, 0);
        let mut counts = [0usize; 5];
        for _ in 0..5000 {
            counts[r.index(5)] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "{counts:?}");
        }
        let u = r.unit_f64();
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn bad_state_is_an_error() {
        let mut s = TrainRng::new(1, 0).state();
        s.seed = "zz".into();
        assert!(TrainRng::from_state(&s, "x").is_err());
    }
}
