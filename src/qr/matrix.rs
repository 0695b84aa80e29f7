//! The symbol's module grid: function patterns, codeword placement, the
//! mask with the lowest penalty, format and version information.

/// Centre coordinates of alignment patterns per version (1..=13).
const ALIGNMENT: [&[usize]; super::MAX_VERSION] = [
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
];

/// Format-information bits of level M (`00`) with `mask`, BCH-protected
/// and masked as the standard requires.
pub(super) fn format_bits(mask: usize) -> usize {
    let data = mask; // level M is 0b00
    let mut rem = data;
    for _ in 0..10 {
        rem = (rem << 1) ^ ((rem >> 9) * 0x537);
    }
    ((data << 10) | rem) ^ 0x5412
}

/// Version-information bits (versions 7 and up).
pub(super) fn version_bits(version: usize) -> usize {
    let mut rem = version;
    for _ in 0..12 {
        rem = (rem << 1) ^ ((rem >> 11) * 0x1F25);
    }
    (version << 12) | rem
}

/// A grid being built.
pub(super) struct Grid {
    pub size: usize,
    pub dark: Vec<bool>,
    pub function: Vec<bool>,
}

impl Grid {
    fn set_function(&mut self, x: usize, y: usize, dark: bool) {
        let i = y * self.size + x;
        self.dark[i] = dark;
        self.function[i] = true;
    }

    pub(super) fn is_function(&self, x: usize, y: usize) -> bool {
        self.function[y * self.size + x]
    }

    /// The grid of `version` with every function pattern drawn and the
    /// format and version areas reserved.
    pub(super) fn with_patterns(version: usize) -> Self {
        let size = 17 + 4 * version;
        let mut grid = Grid {
            size,
            dark: vec![false; size * size],
            function: vec![false; size * size],
        };
        for i in 0..size {
            grid.set_function(6, i, i % 2 == 0);
            grid.set_function(i, 6, i % 2 == 0);
        }
        for (cx, cy) in [(3, 3), (size - 4, 3), (3, size - 4)] {
            grid.finder(cx, cy);
        }
        let centres = ALIGNMENT[version - 1];
        let last = centres.len().saturating_sub(1);
        for (i, &cx) in centres.iter().enumerate() {
            for (j, &cy) in centres.iter().enumerate() {
                let on_finder = (i == 0 && (j == 0 || j == last)) || (i == last && j == 0);
                if !on_finder {
                    grid.alignment(cx, cy);
                }
            }
        }
        // Reserved now, written once the mask is known.
        grid.draw_format(0);
        if version >= 7 {
            grid.draw_version(version);
        }
        grid
    }

    fn finder(&mut self, cx: usize, cy: usize) {
        for dy in -4isize..=4 {
            for dx in -4isize..=4 {
                let (x, y) = (cx as isize + dx, cy as isize + dy);
                let inside =
                    (0..self.size as isize).contains(&x) && (0..self.size as isize).contains(&y);
                if inside {
                    let ring = dx.abs().max(dy.abs());
                    self.set_function(x as usize, y as usize, ring != 2 && ring != 4);
                }
            }
        }
    }

    fn alignment(&mut self, cx: usize, cy: usize) {
        for dy in 0..5usize {
            for dx in 0..5usize {
                let ring = dx.abs_diff(2).max(dy.abs_diff(2));
                self.set_function(cx + dx - 2, cy + dy - 2, ring != 1);
            }
        }
    }

    pub(super) fn draw_format(&mut self, mask: usize) {
        let bits = format_bits(mask);
        let bit = |i: usize| (bits >> i) & 1 == 1;
        let size = self.size;
        for i in 0..6 {
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

    fn draw_version(&mut self, version: usize) {
        let bits = version_bits(version);
        for i in 0..18 {
            let dark = (bits >> i) & 1 == 1;
            let (a, b) = (self.size - 11 + i % 3, i / 3);
            self.set_function(a, b, dark);
            self.set_function(b, a, dark);
        }
    }

    /// The non-function modules in placement order: two-column strips
    /// from the right, alternately upwards and downwards, skipping the
    /// vertical timing column.
    pub(super) fn data_positions(&self) -> Vec<(usize, usize)> {
        let size = self.size;
        let mut out = Vec::new();
        let mut right = size - 1;
        loop {
            if right == 6 {
                right = 5;
            }
            let upward = ((right + 1) & 2) == 0;
            for step in 0..size {
                let y = if upward { size - 1 - step } else { step };
                for x in [right, right - 1] {
                    if !self.is_function(x, y) {
                        out.push((x, y));
                    }
                }
            }
            if right < 2 {
                break;
            }
            right -= 2;
        }
        out
    }
}

/// Whether mask `mask` flips the module at column `x`, row `y`.
pub(super) fn mask_flips(mask: usize, x: usize, y: usize) -> bool {
    match mask {
        0 => (x + y).is_multiple_of(2),
        1 => y.is_multiple_of(2),
        2 => x.is_multiple_of(3),
        3 => (x + y).is_multiple_of(3),
        4 => (x / 3 + y / 2).is_multiple_of(2),
        5 => (x * y) % 2 + (x * y) % 3 == 0,
        6 => ((x * y) % 2 + (x * y) % 3).is_multiple_of(2),
        _ => ((x + y) % 2 + (x * y) % 3).is_multiple_of(2),
    }
}

/// Places `codewords`, applies the best mask: (size, dark modules).
pub(super) fn build(version: usize, codewords: &[u8]) -> (usize, Vec<bool>) {
    let mut grid = Grid::with_patterns(version);
    let positions = grid.data_positions();
    for (i, &(x, y)) in positions.iter().enumerate() {
        let dark = codewords
            .get(i / 8)
            .is_some_and(|byte| (byte >> (7 - i % 8)) & 1 == 1);
        grid.dark[y * grid.size + x] = dark;
    }
    let mut best: Option<(usize, Vec<bool>)> = None;
    for mask in 0..8 {
        let mut candidate = Grid {
            size: grid.size,
            dark: grid.dark.clone(),
            function: grid.function.clone(),
        };
        for &(x, y) in &positions {
            if mask_flips(mask, x, y) {
                let i = y * candidate.size + x;
                candidate.dark[i] = !candidate.dark[i];
            }
        }
        candidate.draw_format(mask);
        let score = penalty(candidate.size, &candidate.dark);
        if best.as_ref().is_none_or(|(s, _)| score < *s) {
            best = Some((score, candidate.dark));
        }
    }
    let dark = best.map(|(_, dark)| dark).unwrap_or(grid.dark);
    (grid.size, dark)
}

/// The standard's penalty score: long runs, 2×2 blocks, finder-like
/// patterns and an unbalanced dark share all make a symbol harder to read.
fn penalty(size: usize, dark: &[bool]) -> usize {
    let at = |x: usize, y: usize| dark[y * size + x];
    let mut score = 0;
    let finder_like = [true, false, true, true, true, false, true];
    for line in 0..size {
        for horizontal in [true, false] {
            let cell = |i: usize| if horizontal { at(i, line) } else { at(line, i) };
            let mut run = 1;
            for i in 1..size {
                if cell(i) == cell(i - 1) {
                    run += 1;
                } else {
                    if run >= 5 {
                        score += run - 2;
                    }
                    run = 1;
                }
            }
            if run >= 5 {
                score += run - 2;
            }
            for start in 0..size.saturating_sub(6) {
                if (0..7).all(|k| cell(start + k) == finder_like[k]) {
                    let light = |from: usize, to: usize| (from..to).all(|i| i >= size || !cell(i));
                    let before = start < 4 || light(start - 4, start);
                    let after = light(start + 7, start + 11);
                    if before || after {
                        score += 40;
                    }
                }
            }
        }
    }
    for y in 0..size - 1 {
        for x in 0..size - 1 {
            let c = at(x, y);
            if c == at(x + 1, y) && c == at(x, y + 1) && c == at(x + 1, y + 1) {
                score += 3;
            }
        }
    }
    let dark_count = dark.iter().filter(|&&d| d).count();
    let percent = dark_count * 100 / dark.len();
    score + 10 * (percent.abs_diff(50) / 5)
}
