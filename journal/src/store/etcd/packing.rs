//! Records too large for an etcd request, deflated.
//!
//! etcd refuses a request over 1.5 MiB (`--max-request-bytes`), and the `run_started` record of
//! a 5,000-worker cluster (its desired cluster and its plan of 10,000 step ids) is larger than
//! that. Such JSON is repetitive and deflates to a tenth or less, so a record over
//! [`PACK_ABOVE`] is stored deflated behind a marker. The marker cannot be mistaken for a plain
//! record: a plain record is `crc32 ++ JSON object`, so its fifth byte is always `{`, and the
//! marker's is `!`. Journals written before packing hold plain records only and read as they
//! were.

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::DeflateDecoder;
use flate2::write::DeflateEncoder;

use super::limits::MAX_TXN_BYTES;
use crate::store::seam::StoreError;

/// Records up to this size are stored as they are.
const PACK_ABOVE: usize = 256 * 1024;

/// What a deflated record starts with.
const MARKER: &[u8; 5] = b"LKZ1!";

/// The value to store for `record`: itself, or deflated behind [`MARKER`] when it is large.
/// Fails, naming the sizes, for a record that does not fit one request even deflated.
pub(super) fn pack(record: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if record.len() <= PACK_ABOVE {
        return Ok(record);
    }
    let mut encoder = DeflateEncoder::new(MARKER.to_vec(), Compression::default());
    let packed = encoder
        .write_all(&record)
        .and_then(|()| encoder.finish())
        .map_err(|e| StoreError::Failed(format!("cannot deflate a record: {e}")))?;
    if packed.len() > MAX_TXN_BYTES {
        return Err(StoreError::Failed(format!(
            "a journal record of {} bytes is still {} bytes deflated, over the {} bytes an etcd \
             request may carry (etcd's --max-request-bytes is 1.5 MiB by default)",
            record.len(),
            packed.len(),
            MAX_TXN_BYTES
        )));
    }
    Ok(packed)
}

/// Whether a stored value is a deflated record.
pub(super) fn is_packed(value: &[u8]) -> bool {
    value.starts_with(MARKER)
}

/// The record a stored value holds.
pub(super) fn unpack(value: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let Some(deflated) = value.strip_prefix(MARKER) else {
        return Ok(value);
    };
    let mut record = Vec::with_capacity(deflated.len() * 8);
    DeflateDecoder::new(deflated)
        .read_to_end(&mut record)
        .map_err(|e| StoreError::Failed(format!("a deflated journal record is damaged: {e}")))?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_records_stay_plain_and_large_ones_come_back_whole() {
        let small = b"\x01\x02\x03\x04{}".to_vec();
        assert_eq!(pack(small.clone()).unwrap(), small);
        assert_eq!(unpack(small.clone()).unwrap(), small);

        let mut large = b"\x01\x02\x03\x04{\"nodes\":[".to_vec();
        for i in 0..20_000 {
            large.extend_from_slice(format!("{{\"hostname\":\"w-{i}\"}},").as_bytes());
        }
        large.extend_from_slice(b"{}]}");
        let packed = pack(large.clone()).unwrap();
        assert!(packed.starts_with(MARKER));
        assert!(
            packed.len() < large.len() / 4,
            "{} of {}",
            packed.len(),
            large.len()
        );
        assert_eq!(unpack(packed).unwrap(), large);
    }

    #[test]
    fn a_record_too_large_even_deflated_is_refused_with_its_sizes() {
        // Bytes that do not deflate: a simple generator's output.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let noise: Vec<u8> = (0..2 * MAX_TXN_BYTES)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let err = pack(noise).unwrap_err().to_string();
        assert!(err.contains("2097152 bytes"), "{err}");
        assert!(err.contains("--max-request-bytes"), "{err}");
    }

    #[test]
    fn a_damaged_deflated_record_is_an_error() {
        let mut value = MARKER.to_vec();
        value.extend_from_slice(b"not deflate data at all");
        assert!(unpack(value).is_err());
    }
}
