//! Reed-Solomon error correction over GF(256) with the QR polynomial
//! x^8 + x^4 + x^3 + x^2 + 1 (0x11D), as ISO/IEC 18004 specifies.

/// `a · b` in GF(256).
fn mul(a: u8, b: u8) -> u8 {
    // Russian-peasant multiplication: no tables to get wrong.
    let (mut a, mut b, mut product) = (u16::from(a), b, 0u16);
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        a <<= 1;
        if a & 0x100 != 0 {
            a ^= 0x11D;
        }
        b >>= 1;
    }
    // Reduced above: fits in a byte.
    (product & 0xFF) as u8
}

/// Coefficients of ∏ (x − αⁱ) for i in 0..degree, highest power first
/// (the leading 1 included).
fn generator(degree: usize) -> Vec<u8> {
    let mut poly = vec![1u8];
    let mut root = 1u8;
    for _ in 0..degree {
        let mut next = vec![0u8; poly.len() + 1];
        for (j, &c) in poly.iter().enumerate() {
            next[j] ^= c;
            next[j + 1] ^= mul(c, root);
        }
        poly = next;
        root = mul(root, 2);
    }
    poly
}

/// The `degree` error-correction codewords of `data`.
pub fn ec_codewords(data: &[u8], degree: usize) -> Vec<u8> {
    let generator = generator(degree);
    let mut remainder = vec![0u8; degree];
    for &byte in data {
        let factor = byte ^ remainder.first().copied().unwrap_or(0);
        remainder.rotate_left(1);
        if let Some(last) = remainder.last_mut() {
            *last = 0;
        }
        for (r, &g) in remainder.iter_mut().zip(&generator[1..]) {
            *r ^= mul(g, factor);
        }
    }
    remainder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_example_block() {
        // ISO/IEC 18004 annex example: "01234567", version 1-M.
        let data = [
            0x10, 0x20, 0x0C, 0x56, 0x61, 0x80, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11, 0xEC, 0x11,
            0xEC, 0x11,
        ];
        assert_eq!(
            ec_codewords(&data, 10),
            [0xA5, 0x24, 0xD4, 0xC1, 0xED, 0x36, 0xC7, 0x87, 0x2C, 0x55]
        );
    }

    #[test]
    fn multiplication_is_the_field_one() {
        assert_eq!(mul(0x80, 2), 0x1D);
        assert_eq!(mul(7, 1), 7);
        assert_eq!(mul(0, 0xFF), 0);
        // α^255 = 1.
        let mut x = 1u8;
        for _ in 0..255 {
            x = mul(x, 2);
        }
        assert_eq!(x, 1);
    }
}
