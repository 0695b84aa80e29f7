//! The encoder checked by a small decoder written from the standard:
//! format bits, unmasking, codeword order, de-interleaving, the
//! Reed-Solomon check and the byte-mode segment.

use super::matrix::{Grid, format_bits, mask_flips, version_bits};
use super::*;

/// Reads `code` back into its bytes.
fn decode(code: &QrCode) -> Vec<u8> {
    let version = (code.size() - 17) / 4;
    // First copy of the format information, bit 14 first.
    let mut raw = 0usize;
    let mut positions: Vec<(usize, usize)> = (0..6).map(|i| (8, i)).collect();
    positions.extend([(8, 7), (8, 8), (7, 8)]);
    positions.extend((9..15).map(|i| (14 - i, 8)));
    for (i, &(x, y)) in positions.iter().enumerate() {
        raw |= usize::from(code.is_dark(x, y)) << i;
    }
    let mask = (0..8)
        .find(|&m| format_bits(m) == raw)
        .expect("format bits of level M");
    let grid = Grid::with_patterns(version);
    let bits: Vec<bool> = grid
        .data_positions()
        .into_iter()
        .map(|(x, y)| code.is_dark(x, y) ^ mask_flips(mask, x, y))
        .collect();
    let stored: Vec<u8> = bits
        .chunks_exact(8)
        .map(|c| c.iter().fold(0u8, |a, &b| (a << 1) | u8::from(b)))
        .collect();
    let (ec_len, (n1, d1), (n2, d2)) = BLOCKS_M[version - 1];
    let lens: Vec<usize> = std::iter::repeat_n(d1, n1)
        .chain(std::iter::repeat_n(d2, n2))
        .collect();
    let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); lens.len()];
    let mut next = stored.iter().copied();
    for i in 0..d1.max(d2) {
        for (b, &len) in lens.iter().enumerate() {
            if i < len {
                blocks[b].push(next.next().unwrap());
            }
        }
    }
    let data: Vec<u8> = blocks.iter().flatten().copied().collect();
    for i in 0..ec_len {
        for block in &mut blocks {
            block.push(next.next().unwrap());
        }
        let _ = i;
    }
    for (block, &len) in blocks.iter().zip(&lens) {
        // A codeword is valid when the EC of its data is its EC part.
        assert_eq!(rs::ec_codewords(&block[..len], ec_len), block[len..]);
    }
    let mut bit_iter = data
        .iter()
        .flat_map(|byte| (0..8).rev().map(move |i| (byte >> i) & 1 == 1));
    let mut read = |n: usize| {
        (0..n).fold(0usize, |acc, _| {
            (acc << 1) | usize::from(bit_iter.next().unwrap())
        })
    };
    assert_eq!(read(4), 0b0100, "byte mode");
    let len = read(count_bits(version));
    (0..len).map(|_| u8::try_from(read(8)).unwrap()).collect()
}

#[test]
fn known_format_and_version_bits() {
    // Table C.1 and D.1 of the standard.
    assert_eq!(format_bits(0), 0b101010000010010);
    assert_eq!(version_bits(7), 0b000111110010010100);
    assert_eq!(version_bits(13), 0b001101100001000111);
}

#[test]
fn round_trips_every_version() {
    for len in [0usize, 1, 14, 20, 40, 77, 100, 134, 180, 213, 250, 287, 331] {
        let data: Vec<u8> = (0..len)
            .map(|i| u8::try_from(i * 37 % 251).unwrap())
            .collect();
        let code = QrCode::encode(&data).unwrap();
        assert_eq!(
            decode(&code),
            data,
            "{len} bytes, version {}",
            code.version()
        );
    }
}

#[test]
fn picks_the_smallest_version() {
    assert_eq!(QrCode::encode(&[b'a'; 14]).unwrap().version(), 1);
    assert_eq!(QrCode::encode(&[b'a'; 15]).unwrap().version(), 2);
    assert_eq!(QrCode::encode(&[b'a'; 213]).unwrap().version(), 10);
    assert_eq!(QrCode::encode(&[b'a'; 331]).unwrap().version(), 13);
    assert_eq!(QrCode::encode(&[b'a'; 332]), Err(TooLong(332)));
}

#[test]
fn a_payment_uri() {
    let uri = "ethereum:0x5fbdb2315678afecb367f032d93f642f64180aa3@31337/pay?address=0xe7f1725e7734ce288f8367e1bb143e90bb3f0512&uint256=12340000&bytes32=0x6a1c1b9e1f43b4b62d1f9d5c1b5e1a1f3c2d4e5f60718293a4b5c6d7e8f90a1b";
    let code = QrCode::encode(uri.as_bytes()).unwrap();
    assert_eq!(decode(&code), uri.as_bytes());
    let svg = to_svg(&code, "Pay <here>");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert!(svg.contains("<title>Pay &lt;here&gt;</title>"));
}

#[test]
fn version_1_of_the_standard_example_layout() {
    // Finder corners and timing are where a reader looks for them.
    let code = QrCode::encode(b"hi").unwrap();
    assert_eq!(code.size(), 21);
    for (x, y) in [(0, 0), (6, 0), (0, 6), (14, 0), (20, 6), (0, 20), (8, 13)] {
        assert!(code.is_dark(x, y), "({x},{y}) dark");
    }
    for (x, y) in [(7, 0), (0, 7), (13, 0), (7, 20), (9, 6)] {
        assert!(!code.is_dark(x, y), "({x},{y}) light");
    }
}
