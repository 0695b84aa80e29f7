//! QR codes (ISO/IEC 18004) for the checkout page's "scan to pay": byte
//! mode, error-correction level M, versions 1 to 13 (up to 331 bytes,
//! room for any EIP-681 payment URI), drawn as SVG by the node so that the
//! page loads nothing from a third party.
//!
//! [`rs`] computes the error-correction codewords, [`matrix`] places
//! patterns and codewords and picks the mask, [`svg`] draws the result.

mod matrix;
mod rs;
mod svg;

pub use svg::to_svg;

/// The largest version this encoder produces.
pub const MAX_VERSION: usize = 13;

/// (blocks, data codewords per block) of one group of blocks.
type Group = (usize, usize);

/// Level-M block structure of each version: error-correction codewords
/// per block, then the short and the long group.
const BLOCKS_M: [(usize, Group, Group); MAX_VERSION] = [
    (10, (1, 16), (0, 0)),
    (16, (1, 28), (0, 0)),
    (26, (1, 44), (0, 0)),
    (18, (2, 32), (0, 0)),
    (24, (2, 43), (0, 0)),
    (16, (4, 27), (0, 0)),
    (18, (4, 31), (0, 0)),
    (22, (2, 38), (2, 39)),
    (22, (3, 36), (2, 37)),
    (26, (4, 43), (1, 44)),
    (30, (1, 50), (4, 51)),
    (22, (6, 36), (2, 37)),
    (22, (8, 37), (1, 38)),
];

/// Data codewords of `version` at level M.
fn data_capacity(version: usize) -> usize {
    let (_, (n1, d1), (n2, d2)) = BLOCKS_M[version - 1];
    n1 * d1 + n2 * d2
}

/// Bits of the byte-mode character count.
fn count_bits(version: usize) -> usize {
    if version <= 9 { 8 } else { 16 }
}

/// A finished symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QrCode {
    version: usize,
    size: usize,
    dark: Vec<bool>,
}

/// Why a text has no QR code here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} bytes do not fit in a version-13 QR code at level M")]
pub struct TooLong(pub usize);

impl QrCode {
    /// The smallest level-M symbol holding `data` in byte mode.
    pub fn encode(data: &[u8]) -> Result<Self, TooLong> {
        let version = (1..=MAX_VERSION)
            .find(|&v| 4 + count_bits(v) + 8 * data.len() <= 8 * data_capacity(v))
            .ok_or(TooLong(data.len()))?;
        let codewords = interleave(version, &data_codewords(version, data));
        let (size, dark) = matrix::build(version, &codewords);
        Ok(Self {
            version,
            size,
            dark,
        })
    }

    /// Modules per side (without the quiet zone).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The version (1..=[`MAX_VERSION`]).
    pub fn version(&self) -> usize {
        self.version
    }

    /// Whether the module at column `x`, row `y` is dark.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }
}

/// Bits, most significant first.
struct Bits(Vec<bool>);

impl Bits {
    fn push(&mut self, value: usize, width: usize) {
        for i in (0..width).rev() {
            self.0.push((value >> i) & 1 == 1);
        }
    }
}

/// Mode, count, bytes, terminator and padding: the data codewords.
fn data_codewords(version: usize, data: &[u8]) -> Vec<u8> {
    let capacity = data_capacity(version) * 8;
    let mut bits = Bits(Vec::with_capacity(capacity));
    bits.push(0b0100, 4);
    bits.push(data.len(), count_bits(version));
    for &byte in data {
        bits.push(usize::from(byte), 8);
    }
    let terminator = (capacity - bits.0.len()).min(4);
    bits.push(0, terminator);
    let to_byte = (8 - bits.0.len() % 8) % 8;
    bits.push(0, to_byte);
    let mut codewords: Vec<u8> = bits
        .0
        .chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit))
        })
        .collect();
    for pad in [0xEC, 0x11].into_iter().cycle() {
        if codewords.len() >= data_capacity(version) {
            break;
        }
        codewords.push(pad);
    }
    codewords
}

/// Splits the data into blocks, appends each block's error correction and
/// interleaves them as the symbol stores them.
fn interleave(version: usize, data: &[u8]) -> Vec<u8> {
    let (ec_len, (n1, d1), (n2, d2)) = BLOCKS_M[version - 1];
    let mut blocks: Vec<&[u8]> = Vec::with_capacity(n1 + n2);
    let mut rest = data;
    for len in std::iter::repeat_n(d1, n1).chain(std::iter::repeat_n(d2, n2)) {
        let (block, tail) = rest.split_at(len);
        blocks.push(block);
        rest = tail;
    }
    let ec: Vec<Vec<u8>> = blocks.iter().map(|b| rs::ec_codewords(b, ec_len)).collect();
    let mut out = Vec::with_capacity(data.len() + ec_len * blocks.len());
    for i in 0..d1.max(d2) {
        out.extend(blocks.iter().filter_map(|b| b.get(i)));
    }
    for i in 0..ec_len {
        out.extend(ec.iter().filter_map(|b| b.get(i)));
    }
    out
}

#[cfg(test)]
mod tests;
