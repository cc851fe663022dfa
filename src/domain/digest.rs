//! SHA-256 digests taken as their input is written: a body of 1,000
//! orders is hashed without first being copied into one string.

use std::io::{self, BufWriter, Write};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Hashes what is written to it, buffered so that the many small writes of
/// a serialiser reach the hasher as blocks.
pub struct Sha256Writer(BufWriter<Hasher>);

struct Hasher(Sha256);

impl Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sha256Writer {
    pub fn new() -> Self {
        Self(BufWriter::with_capacity(8 * 1024, Hasher(Sha256::new())))
    }

    /// The digest of everything written, in lower-case hex.
    pub fn hex(self) -> String {
        let hasher = self
            .0
            .into_inner()
            .unwrap_or_else(|_| unreachable!("hashing cannot fail"));
        hex::encode(hasher.0.finalize())
    }
}

impl Default for Sha256Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Write for Sha256Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// SHA-256 (hex) of `value` as compact JSON (what `serde_json::to_string`
/// would write).
pub fn json_sha256_hex(value: &impl Serialize) -> String {
    let mut out = Sha256Writer::new();
    serde_json::to_writer(&mut out, value).expect("hashing cannot fail");
    out.hex()
}
