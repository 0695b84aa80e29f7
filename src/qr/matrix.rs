//! The module grid: function patterns, data placement, masking.

/// Centres of alignment patterns per version (index 0 = version 1).
const ALIGNMENT: [&[usize]; 15] = [
    &[],
    &[6, 18],
    &[6, 22],
    &[6, 26],
    &[6, 30],
    &[6, 34],
    &[6, 22, 38],
    &[6, 24, 42],
    &[6, 26, 46],
    &[6, 28, 50],
    &[6, 30, 54],
    &[6, 32, 58],
    &[6, 34, 62],
    &[6, 26, 46, 66],
    &[6, 26, 48, 70],
];

/// A finished QR code: dark (`true`) and light modules.
#[derive(Debug, Clone)]
pub struct Matrix {
    size: usize,
    modules: Vec<bool>,
    function: Vec<bool>,
}

impl Matrix {
    /// The code of `version` carrying `codewords` (data and error
    /// correction, interleaved), with the best of the eight masks.
    pub fn new(version: usize, codewords: &[u8]) -> Self {
        let size = 17 + 4 * version;
        let mut m = Matrix {
            size,
            modules: vec![false; size * size],
            function: vec![false; size * size],
        };
        m.draw_function_patterns(version);
        m.draw_codewords(codewords);
        let mut best: Option<(u32, Matrix)> = None;
        for mask in 0..8 {
            let mut candidate = m.clone();
            candidate.apply_mask(mask);
            candidate.draw_format(mask);
            let penalty = candidate.penalty();
            if best.as_ref().is_none_or(|(p, _)| penalty < *p) {
                best = Some((penalty, candidate));
            }
        }
        best.map_or(m, |(_, b)| b)
    }

    /// Modules per side.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether the module at column `x`, row `y` is dark.
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.modules[y * self.size + x]
    }

    fn set_function(&mut self, x: usize, y: usize, dark: bool) {
        let i = y * self.size + x;
        self.modules[i] = dark;
        self.function[i] = true;
    }

    fn draw_function_patterns(&mut self, version: usize) {
        let size = self.size;
        for i in 0..size {
            self.set_function(6, i, i % 2 == 0);
            self.set_function(i, 6, i % 2 == 0);
        }
        for (cx, cy) in [(3, 3), (size - 4, 3), (3, size - 4)] {
            self.draw_finder(cx, cy);
        }
        let centres = ALIGNMENT[version - 1];
        let last = centres.len().saturating_sub(1);
        for (i, &cx) in centres.iter().enumerate() {
            for (j, &cy) in centres.iter().enumerate() {
                let on_finder = (i == 0 && (j == 0 || j == last)) || (i == last && j == 0);
                if !on_finder {
                    self.draw_alignment(cx, cy);
                }
            }
        }
        // Reserve the format areas (drawn for real after masking).
        self.draw_format(0);
        if version >= 7 {
            self.draw_version(version);
        }
    }

    /// The 7×7 finder centred on (`cx`, `cy`) with its light separator,
    /// clipped at the edges.
    fn draw_finder(&mut self, cx: usize, cy: usize) {
        for y in cy.saturating_sub(4)..=(cy + 4).min(self.size - 1) {
            for x in cx.saturating_sub(4)..=(cx + 4).min(self.size - 1) {
                let dist = x.abs_diff(cx).max(y.abs_diff(cy));
                self.set_function(x, y, dist != 2 && dist != 4);
            }
        }
    }

    fn draw_alignment(&mut self, cx: usize, cy: usize) {
        for y in cy - 2..=cy + 2 {
            for x in cx - 2..=cx + 2 {
                let dark = x.abs_diff(cx).max(y.abs_diff(cy)) != 1;
                self.set_function(x, y, dark);
            }
        }
    }

    /// Level M (format bits 00) and `mask`, BCH(15,5) protected.
    fn draw_format(&mut self, mask: usize) {
        let data = mask;
        let mut rem = data;
        for _ in 0..10 {
            rem = (rem << 1) ^ ((rem >> 9) * 0x537);
        }
        let bits = ((data << 10) | rem) ^ 0x5412;
        let bit = |i: usize| (bits >> i) & 1 == 1;
        let size = self.size;
        for i in 0..=5 {
            self.set_function(8, i, bit(i));
        }
        self.set_function(8, 7, bit(6));
        self.set_function(8, 8, bit(7));
        self.set_function(7, 8, bit(8));
        for i in 9..15 {
            self.set_function(14 - i, 8, bit(i));
        }
        for i in 0..8 {
            self.set_function(size - 1 - i, 8, bit(i));
        }
        for i in 8..15 {
            self.set_function(8, size - 15 + i, bit(i));
        }
        self.set_function(8, size - 8, true);
    }

    /// The version, BCH(18,6) protected, in its two 6×3 blocks.
    fn draw_version(&mut self, version: usize) {
        let mut rem = version;
        for _ in 0..12 {
            rem = (rem << 1) ^ ((rem >> 11) * 0x1F25);
        }
        let bits = (version << 12) | rem;
        for i in 0..18 {
            let dark = (bits >> i) & 1 == 1;
            let a = self.size - 11 + i % 3;
            let b = i / 3;
            self.set_function(a, b, dark);
            self.set_function(b, a, dark);
        }
    }

    /// Data in the zigzag of column pairs from the bottom right.
    fn draw_codewords(&mut self, codewords: &[u8]) {
        let size = self.size;
        let total = codewords.len() * 8;
        let mut i = 0;
        let mut right = size - 1;
        loop {
            if right == 6 {
                right = 5;
            }
            let upward = (right + 1) & 2 == 0;
            for vert in 0..size {
                for j in 0..2 {
                    let x = right - j;
                    let y = if upward { size - 1 - vert } else { vert };
                    let index = y * size + x;
                    if !self.function[index] && i < total {
                        self.modules[index] = (codewords[i >> 3] >> (7 - (i & 7))) & 1 == 1;
                        i += 1;
                    }
                }
            }
            if right < 2 {
                break;
            }
            right -= 2;
        }
    }

    fn apply_mask(&mut self, mask: usize) {
        for y in 0..self.size {
            for x in 0..self.size {
                let flip = match mask {
                    0 => (x + y) % 2 == 0,
                    1 => y % 2 == 0,
                    2 => x % 3 == 0,
                    3 => (x + y) % 3 == 0,
                    4 => (x / 3 + y / 2) % 2 == 0,
                    5 => (x * y) % 2 + (x * y) % 3 == 0,
                    6 => ((x * y) % 2 + (x * y) % 3) % 2 == 0,
                    _ => ((x + y) % 2 + (x * y) % 3) % 2 == 0,
                };
                let i = y * self.size + x;
                if flip && !self.function[i] {
                    self.modules[i] = !self.modules[i];
                }
            }
        }
    }

    /// The standard's four penalty rules.
    fn penalty(&self) -> u32 {
        let size = self.size;
        let mut score = 0u32;
        let line = |horizontal: bool, k: usize| -> Vec<bool> {
            (0..size)
                .map(|i| {
                    if horizontal {
                        self.get(i, k)
                    } else {
                        self.get(k, i)
                    }
                })
                .collect()
        };
        const FINDER: [bool; 11] = [
            true, false, true, true, true, false, true, false, false, false, false,
        ];
        for horizontal in [true, false] {
            for k in 0..size {
                let l = line(horizontal, k);
                let mut run = 1;
                for i in 1..=size {
                    if i < size && l[i] == l[i - 1] {
                        run += 1;
                    } else {
                        if run >= 5 {
                            score += 3 + (run - 5);
                        }
                        run = 1;
                    }
                }
                for w in l.windows(11) {
                    if w == FINDER || w.iter().rev().eq(FINDER.iter()) {
                        score += 40;
                    }
                }
            }
        }
        for y in 0..size - 1 {
            for x in 0..size - 1 {
                let c = self.get(x, y);
                if c == self.get(x + 1, y) && c == self.get(x, y + 1) && c == self.get(x + 1, y + 1)
                {
                    score += 3;
                }
            }
        }
        let dark = self.modules.iter().filter(|&&d| d).count();
        let total = size * size;
        // Integer form of 10 × floor(|dark% − 50| / 5).
        let deviation = (dark * 20).abs_diff(total * 10) / total;
        score += 10 * u32::try_from(deviation).unwrap_or(u32::MAX);
        score
    }
}
