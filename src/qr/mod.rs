//! A small QR code encoder (ISO/IEC 18004): byte mode, error correction
//! level M, versions 1 to 15 (up to 412 bytes), rendered as SVG. Enough for
//! the `otpauth://` URI of TOTP enrolment, with no dependency and nothing
//! loaded by the page.
//!
//! The steps are the standard's: [`encode`] turns bytes into data
//! codewords, [`reed_solomon`] adds error correction per block and
//! interleaves, [`matrix`] places function patterns and data, tries the
//! eight masks and keeps the one with the lowest penalty.

mod matrix;
mod reed_solomon;

pub use matrix::Matrix;

/// Per version (index 0 = version 1), level M: error correction codewords
/// per block, and the blocks as (count, data codewords each).
const LEVEL_M: [(usize, [(usize, usize); 2]); 15] = [
    (10, [(1, 16), (0, 0)]),
    (16, [(1, 28), (0, 0)]),
    (26, [(1, 44), (0, 0)]),
    (18, [(2, 32), (0, 0)]),
    (24, [(2, 43), (0, 0)]),
    (16, [(4, 27), (0, 0)]),
    (18, [(4, 31), (0, 0)]),
    (22, [(2, 38), (2, 39)]),
    (22, [(3, 36), (2, 37)]),
    (26, [(4, 43), (1, 44)]),
    (30, [(1, 50), (4, 51)]),
    (22, [(6, 36), (2, 37)]),
    (22, [(8, 37), (1, 38)]),
    (24, [(4, 40), (5, 41)]),
    (24, [(5, 41), (5, 42)]),
];

/// The largest version this encoder makes.
pub const MAX_VERSION: usize = LEVEL_M.len();

fn data_capacity(version: usize) -> usize {
    let (_, groups) = LEVEL_M[version - 1];
    groups.iter().map(|(n, k)| n * k).sum()
}

fn count_bits(version: usize) -> usize {
    if version <= 9 { 8 } else { 16 }
}

/// Why data cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0} bytes do not fit in a version-{MAX_VERSION} QR code")]
pub struct TooLong(pub usize);

struct Bits(Vec<bool>);

impl Bits {
    fn push(&mut self, value: usize, n: usize) {
        for i in (0..n).rev() {
            self.0.push((value >> i) & 1 == 1);
        }
    }
}

/// The smallest version that holds `data`, and its data codewords (mode,
/// count, bytes, terminator, padding).
pub fn encode(data: &[u8]) -> Result<(usize, Vec<u8>), TooLong> {
    let version = (1..=MAX_VERSION)
        .find(|&v| 4 + count_bits(v) + 8 * data.len() <= 8 * data_capacity(v))
        .ok_or(TooLong(data.len()))?;
    let capacity = data_capacity(version) * 8;
    let mut bits = Bits(Vec::with_capacity(capacity));
    bits.push(0b0100, 4);
    bits.push(data.len(), count_bits(version));
    for &b in data {
        bits.push(usize::from(b), 8);
    }
    let terminator = (capacity - bits.0.len()).min(4);
    bits.push(0, terminator);
    let to_byte = (8 - bits.0.len() % 8) % 8;
    bits.push(0, to_byte);
    let mut codewords: Vec<u8> = bits
        .0
        .chunks(8)
        .map(|c| c.iter().fold(0u8, |acc, &b| (acc << 1) | u8::from(b)))
        .collect();
    for pad in [0xEC, 0x11].into_iter().cycle() {
        if codewords.len() >= capacity / 8 {
            break;
        }
        codewords.push(pad);
    }
    Ok((version, codewords))
}

/// The QR code of `data`.
pub fn code(data: &[u8]) -> Result<Matrix, TooLong> {
    let (version, codewords) = encode(data)?;
    let (ecc, groups) = LEVEL_M[version - 1];
    let all = reed_solomon::interleave(&codewords, ecc, &groups);
    Ok(Matrix::new(version, &all))
}

/// The QR code of `data` as an SVG of `scale` pixels per module, with the
/// standard's four-module quiet zone. An empty string when `data` is too
/// long (callers show the text form as well).
pub fn svg(data: &[u8], scale: usize) -> String {
    let Ok(matrix) = code(data) else {
        return String::new();
    };
    let size = matrix.size();
    let full = size + 8;
    let mut path = String::new();
    for y in 0..size {
        for x in 0..size {
            if matrix.get(x, y) {
                path.push_str(&format!("M{},{}h1v1h-1z", x + 4, y + 4));
            }
        }
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {full} {full}\" width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code\"><rect width=\"{full}\" height=\"{full}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>",
        px = full * scale
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_match_the_standard() {
        // Total codewords per version (data + error correction), level M.
        let totals = [
            26, 44, 70, 100, 134, 172, 196, 242, 292, 346, 404, 466, 532, 581, 655,
        ];
        for (i, total) in totals.into_iter().enumerate() {
            let (ecc, groups) = LEVEL_M[i];
            let blocks: usize = groups.iter().map(|(n, _)| n).sum();
            assert_eq!(
                data_capacity(i + 1) + ecc * blocks,
                total,
                "version {}",
                i + 1
            );
        }
    }

    #[test]
    fn picks_the_smallest_version() {
        assert_eq!(encode(b"hello").unwrap().0, 1);
        assert_eq!(encode(&[b'a'; 14]).unwrap().0, 1);
        assert_eq!(encode(&[b'a'; 15]).unwrap().0, 2);
        assert_eq!(encode(&[b'a'; 412]).unwrap().0, 15);
        assert_eq!(encode(&[b'a'; 413]), Err(TooLong(413)));
    }

    /// ISO/IEC 18004's worked example is numeric; this is the byte-mode
    /// layout of "hello" checked by hand: mode 0100, count 00000101, data.
    #[test]
    fn byte_mode_layout() {
        let (_, cw) = encode(b"hello").unwrap();
        assert_eq!(&cw[..7], &[0x40, 0x56, 0x86, 0x56, 0xC6, 0xC6, 0xF0]);
        assert_eq!(&cw[7..9], &[0xEC, 0x11]);
        assert_eq!(cw.len(), 16);
    }

    #[test]
    fn svg_has_the_quiet_zone() {
        let svg = svg(b"otpauth://totp/x?secret=ABC", 4);
        assert!(svg.starts_with("<svg"));
        assert!(
            svg.contains("viewBox=\"0 0 37 37\""),
            "version 3 and the quiet zone: {svg}"
        );
    }
}
