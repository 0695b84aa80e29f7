//! Reed–Solomon error correction over GF(256) with the QR polynomial
//! x⁸ + x⁴ + x³ + x² + 1, and the interleaving of blocks.

/// Product of `a` and `b` in GF(256) modulo 0x11D.
fn multiply(a: u8, b: u8) -> u8 {
    let mut result: u16 = 0;
    let (mut a, mut b) = (u16::from(a), b);
    while b != 0 {
        if b & 1 == 1 {
            result ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= 0x11D;
        }
        b >>= 1;
    }
    (result & 0xFF) as u8
}

/// Coefficients of ∏(x − αⁱ) for i < `degree`, highest first, without the
/// leading 1.
fn generator(degree: usize) -> Vec<u8> {
    let mut poly = vec![0u8; degree];
    poly[degree - 1] = 1;
    let mut root: u8 = 1;
    for _ in 0..degree {
        for j in 0..degree {
            poly[j] = multiply(poly[j], root);
            if j + 1 < degree {
                poly[j] ^= poly[j + 1];
            }
        }
        root = multiply(root, 2);
    }
    poly
}

/// The `degree` error correction codewords of `data`.
pub fn remainder(data: &[u8], degree: usize) -> Vec<u8> {
    let generator = generator(degree);
    let mut result = vec![0u8; degree];
    for &b in data {
        let factor = b ^ result[0];
        result.remove(0);
        result.push(0);
        for (r, &g) in result.iter_mut().zip(&generator) {
            *r ^= multiply(g, factor);
        }
    }
    result
}

/// Splits data codewords into blocks, appends each block's error
/// correction, and interleaves them as the standard orders them.
pub fn interleave(data: &[u8], ecc: usize, groups: &[(usize, usize); 2]) -> Vec<u8> {
    let mut blocks: Vec<&[u8]> = Vec::new();
    let mut rest = data;
    for &(count, size) in groups {
        for _ in 0..count {
            let (block, tail) = rest.split_at(size.min(rest.len()));
            blocks.push(block);
            rest = tail;
        }
    }
    let corrections: Vec<Vec<u8>> = blocks.iter().map(|b| remainder(b, ecc)).collect();
    let longest = blocks.iter().map(|b| b.len()).max().unwrap_or(0);
    let mut out = Vec::with_capacity(data.len() + ecc * blocks.len());
    for i in 0..longest {
        out.extend(blocks.iter().filter_map(|b| b.get(i)));
    }
    for i in 0..ecc {
        out.extend(corrections.iter().map(|c| c[i]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The standard's annex I example (version 1-M, "01234567"): data
    /// codewords and their 10 error correction codewords.
    #[test]
    fn annex_example() {
        let data = [
            0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11,
            0xEC, 0x11,
        ];
        assert_eq!(
            remainder(&data, 10),
            vec![0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55]
        );
    }

    #[test]
    fn field_multiplication() {
        assert_eq!(multiply(0, 7), 0);
        assert_eq!(multiply(1, 0x53), 0x53);
        assert_eq!(multiply(2, 0x80), 0x1D);
    }
}
