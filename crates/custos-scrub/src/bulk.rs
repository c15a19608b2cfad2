//! The per-byte part of the candidate prefilter (see `candidates`): for
//! each 64-byte block of a haystack, one bit per byte for each of the eight
//! `K_*` bits of the byte's kind (a 256-entry table) and for the anchor
//! bytes `:`, `@` and `w`/`W`. Everything after this pass is 64-bit logic
//! on these bit planes and a walk over their set bits, so this table
//! lookup is the only work done for every byte.
//!
//! With AVX2 (detected at run time) the lookup is done 32 bytes at a time:
//! eight byte shuffles look every byte up in the eight ASCII rows of 16
//! table entries, a tree of seven blends picks the row by the high nibble,
//! and each plane comes out of a shift and a `movemask`. About 3
//! instructions per byte in all, instead of about 10 for the scalar
//! lookup, the byte-wise flag logic and a `memchr` restarted per anchor of
//! the earlier version. The intrinsics go through `pulp`, which holds the
//! `unsafe` of the run-time dispatch (this crate forbids `unsafe`;
//! `multiversion` does not help here: it compiles the body as a nested
//! function without the target features, so intrinsics cannot be called
//! safely in it, and the compiler turns neither a table lookup into
//! shuffles nor a bit gather into `movemask` on its own). With AVX-512
//! (F and BW; pulp's `V4`, tried first) the same lookup takes 64 bytes
//! at a time, the blends go by mask registers, and each plane is one byte
//! test straight into a 64-bit mask: no shifts, `movemask`s or halves to
//! merge (valgrind does not run AVX-512, so instruction counts show the
//! AVX2 path). Without AVX2 a scalar lookup and a multiplication per
//! plane and eight bytes give the same planes.

/// Planes per block: the eight kind bits (plane `i` is bit `1 << i`), then
/// [`P_COLON`], [`P_AT`] and [`P_W`].
pub(crate) const PLANES: usize = 11;
/// Plane of the `:` bytes, …
pub(crate) const P_COLON: usize = 8;
/// … of the `@` bytes, …
pub(crate) const P_AT: usize = 9;
/// … and of the `w` and `W` bytes.
pub(crate) const P_W: usize = 10;

/// The planes of one block of 64 bytes (byte `i` is bit `i`).
pub(crate) type Planes = [u64; PLANES];

/// The kind of each byte value.
#[derive(Clone, Debug)]
pub(crate) struct Lut {
    kind: [u8; 256],
    /// `rows[h]`: the kinds of the bytes `h << 4 | l` for `l` in
    /// `0..16`, as the operand of a byte shuffle.
    rows: [[u8; 16]; 16],
    /// The kind shared by every byte from 0x80 on, if there is one (there
    /// is unless a custom pattern may start on such a byte): then only the
    /// eight ASCII rows are shuffled.
    high: Option<u8>,
}

impl Lut {
    pub(crate) fn new(kind: [u8; 256]) -> Self {
        let mut rows = [[0u8; 16]; 16];
        for (b, &k) in kind.iter().enumerate() {
            if let Some(slot) = rows.get_mut(b >> 4).and_then(|r| r.get_mut(b & 15)) {
                *slot = k;
            }
        }
        let high = kind.get(0x80).copied().filter(|&first| {
            let rest = kind.get(0x80..).unwrap_or_default();
            rest.iter().all(|&k| k == first)
        });
        Self { kind, rows, high }
    }

    /// The kind of `b`.
    pub(crate) fn kind(&self, b: u8) -> u8 {
        self.kind.get(usize::from(b)).copied().unwrap_or(0)
    }
}

/// Sets `out` to the planes of `hay`, one entry per started block of 64
/// bytes; the planes are clear past the end of `hay`.
pub(crate) fn planes(lut: &Lut, hay: &[u8], out: &mut Vec<Planes>) {
    out.clear();
    out.reserve(hay.len().div_ceil(64));
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V4::try_new() {
        let op = avx512::Planes {
            simd,
            lut,
            hay,
            out,
        };
        pulp::Simd::vectorize(simd, op);
        return;
    }
    avx2_or_scalar_planes(lut, hay, out);
}

/// [`planes`] without AVX-512: with AVX2 if there is, else scalar.
fn avx2_or_scalar_planes(lut: &Lut, hay: &[u8], out: &mut Vec<Planes>) {
    out.clear();
    #[cfg(target_arch = "x86_64")]
    if let Some(simd) = pulp::x86::V3::try_new() {
        let op = avx2::Planes {
            simd,
            lut,
            hay,
            out,
        };
        pulp::Simd::vectorize(simd, op);
        return;
    }
    scalar_planes(lut, hay, out);
}

/// The last, partial block of `hay` padded with zeros, and the mask of its
/// bytes (`None` when `hay` ends on a block boundary).
fn tail(hay: &[u8]) -> Option<([u8; 64], u64)> {
    let rest = hay.chunks_exact(64).remainder();
    if rest.is_empty() {
        return None;
    }
    let mut block = [0u8; 64];
    for (b, &r) in block.iter_mut().zip(rest) {
        *b = r;
    }
    Some((block, u64::MAX >> (64 - rest.len())))
}

/// The planes of `block`, cleared outside `valid`.
fn masked(mut planes: Planes, valid: u64) -> Planes {
    for p in &mut planes {
        *p &= valid;
    }
    planes
}

/// [`planes`] without vector instructions beyond the baseline.
fn scalar_planes(lut: &Lut, hay: &[u8], out: &mut Vec<Planes>) {
    out.clear();
    for block in hay.chunks_exact(64) {
        out.push(scalar_block(lut, block));
    }
    if let Some((block, valid)) = tail(hay) {
        out.push(masked(scalar_block(lut, &block), valid));
    }
}

/// The planes of 64 bytes, eight at a time: the kinds of eight bytes as
/// one word, then per plane its bit of each byte gathered by a
/// multiplication (see `compress`).
fn scalar_block(lut: &Lut, block: &[u8]) -> Planes {
    const EACH: u64 = 0x0101_0101_0101_0101;
    // High bit of each byte of `x` that is zero.
    let zero = |x: u64| !(((x & (EACH * 0x7f)) + EACH * 0x7f) | x | (EACH * 0x7f));
    let mut planes = [0u64; PLANES];
    for (i, eight) in block.chunks_exact(8).enumerate() {
        let mut kinds = [0u8; 8];
        for (k, &b) in kinds.iter_mut().zip(eight) {
            *k = lut.kind(b);
        }
        let kinds = u64::from_le_bytes(kinds);
        let bytes = eight
            .try_into()
            .map_or(0, |b: [u8; 8]| u64::from_le_bytes(b));
        let shift = 8 * i;
        for (bit, plane) in planes.iter_mut().take(8).enumerate() {
            *plane |= compress((kinds >> bit) << 7) << shift;
        }
        let anchors = [
            zero(bytes ^ (EACH * u64::from(b':'))),
            zero(bytes ^ (EACH * u64::from(b'@'))),
            zero((bytes | (EACH * 0x20)) ^ (EACH * u64::from(b'w'))),
        ];
        for (plane, a) in planes.iter_mut().skip(P_COLON).zip(anchors) {
            *plane |= compress(a) << shift;
        }
    }
    planes
}

/// The high bits of the 8 bytes of `flags` as an 8-bit mask (byte 0 → bit
/// 0): the multiplication moves bit `8i + 7` to bit `56 + i`, without
/// carries since the partial products never overlap.
fn compress(flags: u64) -> u64 {
    ((flags & 0x8080_8080_8080_8080) >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::{__m128i, __m256i};

    use pulp::x86::V3;

    use super::{masked, tail, Lut, Planes as Block};

    /// [`super::planes`] with AVX2, as an operation for pulp's `vectorize`,
    /// which enables the target features: everything in it is inlined
    /// there (a closure would not be, and the intrinsics would become
    /// calls).
    pub(super) struct Planes<'a> {
        pub(super) simd: V3,
        pub(super) lut: &'a Lut,
        pub(super) hay: &'a [u8],
        pub(super) out: &'a mut Vec<Block>,
    }

    impl pulp::NullaryFnOnce for Planes<'_> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let Self {
                simd,
                lut,
                hay,
                out,
            } = self;
            planes(simd, lut, hay, out);
        }
    }

    #[inline(always)]
    fn planes(simd: V3, lut: &Lut, hay: &[u8], out: &mut Vec<Block>) {
        let mut rows = [simd.avx._mm256_setzero_si256(); 16];
        for (row, &bytes) in rows.iter_mut().zip(&lut.rows) {
            let half = pulp::bytemuck::cast::<[u8; 16], __m128i>(bytes);
            *row = simd.avx2._mm256_broadcastsi128_si256(half);
        }
        let table = Table {
            simd,
            rows: &rows,
            high: lut.high,
        };
        for b in hay.chunks_exact(64) {
            out.push(table.block(b));
        }
        if let Some((b, valid)) = tail(hay) {
            out.push(masked(table.block(&b), valid));
        }
    }

    /// The shuffle operands of a [`Lut`].
    struct Table<'a> {
        simd: V3,
        rows: &'a [__m256i; 16],
        high: Option<u8>,
    }

    impl Table<'_> {
        /// The planes of the 64 bytes of `block`.
        #[inline(always)]
        fn block(&self, block: &[u8]) -> Block {
            let (avx, avx2) = (self.simd.avx, self.simd.avx2);
            let load = |i: usize| {
                let bytes = block
                    .get(i..i + 32)
                    .and_then(|s| <[u8; 32]>::try_from(s).ok());
                pulp::bytemuck::cast::<[u8; 32], __m256i>(bytes.unwrap_or([0; 32]))
            };
            let (lo, hi) = (load(0), load(32));
            let (k_lo, k_hi) = (self.kinds(lo), self.kinds(hi));
            // `movemask` takes the high bit of each byte.
            let mask = |x| u64::from(avx2._mm256_movemask_epi8(x) as u32);
            let both = |lo, hi| mask(lo) | mask(hi) << 32;
            let splat = |b: u8| avx._mm256_set1_epi8(b as i8);
            let eq = |x, b| avx2._mm256_cmpeq_epi8(x, splat(b));
            let w = |x| eq(avx2._mm256_or_si256(x, splat(0x20)), b'w');
            [
                both(
                    avx2._mm256_slli_epi16::<7>(k_lo),
                    avx2._mm256_slli_epi16::<7>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<6>(k_lo),
                    avx2._mm256_slli_epi16::<6>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<5>(k_lo),
                    avx2._mm256_slli_epi16::<5>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<4>(k_lo),
                    avx2._mm256_slli_epi16::<4>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<3>(k_lo),
                    avx2._mm256_slli_epi16::<3>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<2>(k_lo),
                    avx2._mm256_slli_epi16::<2>(k_hi),
                ),
                both(
                    avx2._mm256_slli_epi16::<1>(k_lo),
                    avx2._mm256_slli_epi16::<1>(k_hi),
                ),
                both(k_lo, k_hi),
                both(eq(lo, b':'), eq(hi, b':')),
                both(eq(lo, b'@'), eq(hi, b'@')),
                both(w(lo), w(hi)),
            ]
        }

        /// The kinds of the 32 bytes `v`: every row looked up by the low
        /// nibble, then a tree of blends picks the row of each byte by the
        /// bits of its high nibble (`blendv` takes the high bit of each
        /// byte of its mask, so the mask is `v` shifted to put the bit
        /// there): 8 shuffles and 8 blends instead of a scalar lookup for
        /// each of the 32 bytes.
        #[inline(always)]
        fn kinds(&self, v: __m256i) -> __m256i {
            let (avx, avx2) = (self.simd.avx, self.simd.avx2);
            let splat = |b: u8| avx._mm256_set1_epi8(b as i8);
            // A shuffle takes the low nibble, and gives 0 where the high
            // bit is set: those bytes are replaced at the end.
            let index = match self.high {
                Some(_) => v,
                None => avx2._mm256_and_si256(v, splat(0x0f)),
            };
            // Bits 4, 5 and 6 of each byte moved to its high bit.
            let bits = [
                avx2._mm256_slli_epi16::<3>(v),
                avx2._mm256_slli_epi16::<2>(v),
                avx2._mm256_slli_epi16::<1>(v),
            ];
            let kinds = self.eight(0, index, bits);
            match self.high {
                Some(k) => avx2._mm256_blendv_epi8(kinds, splat(k), v),
                None => avx2._mm256_blendv_epi8(kinds, self.eight(8, index, bits), v),
            }
        }

        /// Rows `from..from + 8` looked up by `index`, the row of each
        /// byte picked by `bits` (its bits 4, 5 and 6 as high bits).
        #[inline(always)]
        fn eight(&self, from: usize, index: __m256i, bits: [__m256i; 3]) -> __m256i {
            let avx2 = self.simd.avx2;
            let [bit4, bit5, bit6] = bits;
            let row = |h: usize| {
                let row = self.rows.get(from + h).copied().unwrap_or(index);
                avx2._mm256_shuffle_epi8(row, index)
            };
            let two = [
                avx2._mm256_blendv_epi8(row(0), row(1), bit4),
                avx2._mm256_blendv_epi8(row(2), row(3), bit4),
                avx2._mm256_blendv_epi8(row(4), row(5), bit4),
                avx2._mm256_blendv_epi8(row(6), row(7), bit4),
            ];
            let [a, b, c, d] = two;
            let low = avx2._mm256_blendv_epi8(a, b, bit5);
            let high = avx2._mm256_blendv_epi8(c, d, bit5);
            avx2._mm256_blendv_epi8(low, high, bit6)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::{__m128i, __m512i};

    use pulp::x86::V4;

    use super::{masked, tail, Lut, Planes as Block};

    /// [`super::planes`] with AVX-512 (F and BW), as an operation for
    /// pulp's `vectorize` (see the AVX2 one): 64 bytes per vector, the
    /// row of each byte picked by blends under mask registers, and each
    /// plane straight out of a byte test into a 64-bit mask, with no
    /// shifts, `movemask`s and merging of halves.
    pub(super) struct Planes<'a> {
        pub(super) simd: V4,
        pub(super) lut: &'a Lut,
        pub(super) hay: &'a [u8],
        pub(super) out: &'a mut Vec<Block>,
    }

    impl pulp::NullaryFnOnce for Planes<'_> {
        type Output = ();

        #[inline(always)]
        fn call(self) {
            let Self {
                simd,
                lut,
                hay,
                out,
            } = self;
            planes(simd, lut, hay, out);
        }
    }

    #[inline(always)]
    fn planes(simd: V4, lut: &Lut, hay: &[u8], out: &mut Vec<Block>) {
        let mut rows = [simd.avx512f._mm512_setzero_si512(); 16];
        for (row, &bytes) in rows.iter_mut().zip(&lut.rows) {
            let half = pulp::bytemuck::cast::<[u8; 16], __m128i>(bytes);
            *row = simd.avx512f._mm512_broadcast_i32x4(half);
        }
        let table = Table {
            simd,
            rows: &rows,
            high: lut.high,
        };
        for b in hay.chunks_exact(64) {
            out.push(table.block(b));
        }
        if let Some((b, valid)) = tail(hay) {
            out.push(masked(table.block(&b), valid));
        }
    }

    /// The shuffle operands of a [`Lut`].
    struct Table<'a> {
        simd: V4,
        rows: &'a [__m512i; 16],
        high: Option<u8>,
    }

    impl Table<'_> {
        /// The planes of the 64 bytes of `block`.
        #[inline(always)]
        fn block(&self, block: &[u8]) -> Block {
            let (f, bw) = (self.simd.avx512f, self.simd.avx512bw);
            let bytes = <[u8; 64]>::try_from(block).unwrap_or([0; 64]);
            let v = pulp::bytemuck::cast::<[u8; 64], __m512i>(bytes);
            let k = self.kinds(v);
            let splat = |b: u8| f._mm512_set1_epi8(b as i8);
            let test = |bit: u8| bw._mm512_test_epi8_mask(k, splat(bit));
            let eq = |x, b| bw._mm512_cmpeq_epi8_mask(x, splat(b));
            [
                test(0x01),
                test(0x02),
                test(0x04),
                test(0x08),
                test(0x10),
                test(0x20),
                test(0x40),
                test(0x80),
                eq(v, b':'),
                eq(v, b'@'),
                eq(f._mm512_or_si512(v, splat(0x20)), b'w'),
            ]
        }

        /// The kinds of the 64 bytes `v`: every row looked up by the low
        /// nibble (a shuffle within each 16-byte lane, as with AVX2), then
        /// a tree of blends picks the row of each byte by the bits of its
        /// high nibble, tested into masks.
        #[inline(always)]
        fn kinds(&self, v: __m512i) -> __m512i {
            let (f, bw) = (self.simd.avx512f, self.simd.avx512bw);
            let splat = |b: u8| f._mm512_set1_epi8(b as i8);
            // A shuffle takes the low nibble, and gives 0 where the high
            // bit is set: those bytes are replaced at the end.
            let index = match self.high {
                Some(_) => v,
                None => f._mm512_and_si512(v, splat(0x0f)),
            };
            let bits = [
                bw._mm512_test_epi8_mask(v, splat(0x10)),
                bw._mm512_test_epi8_mask(v, splat(0x20)),
                bw._mm512_test_epi8_mask(v, splat(0x40)),
            ];
            let high = bw._mm512_movepi8_mask(v);
            let kinds = self.eight(0, index, bits);
            match self.high {
                Some(k) => bw._mm512_mask_blend_epi8(high, kinds, splat(k)),
                None => bw._mm512_mask_blend_epi8(high, kinds, self.eight(8, index, bits)),
            }
        }

        /// Rows `from..from + 8` looked up by `index`, the row of each
        /// byte picked by `bits` (its bits 4, 5 and 6).
        #[inline(always)]
        fn eight(&self, from: usize, index: __m512i, bits: [u64; 3]) -> __m512i {
            let bw = self.simd.avx512bw;
            let [bit4, bit5, bit6] = bits;
            let row = |h: usize| {
                let row = self.rows.get(from + h).copied().unwrap_or(index);
                bw._mm512_shuffle_epi8(row, index)
            };
            let two = [
                bw._mm512_mask_blend_epi8(bit4, row(0), row(1)),
                bw._mm512_mask_blend_epi8(bit4, row(2), row(3)),
                bw._mm512_mask_blend_epi8(bit4, row(4), row(5)),
                bw._mm512_mask_blend_epi8(bit4, row(6), row(7)),
            ];
            let [a, b, c, d] = two;
            let low = bw._mm512_mask_blend_epi8(bit5, a, b);
            let high = bw._mm512_mask_blend_epi8(bit5, c, d);
            bw._mm512_mask_blend_epi8(bit6, low, high)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planes by definition, byte by byte.
    fn reference(lut: &Lut, hay: &[u8]) -> Vec<Planes> {
        let mut out = vec![[0u64; PLANES]; hay.len().div_ceil(64)];
        for (i, &b) in hay.iter().enumerate() {
            let planes = &mut out[i / 64];
            let k = lut.kind(b);
            for (bit, plane) in planes.iter_mut().take(8).enumerate() {
                *plane |= u64::from((k >> bit) & 1) << (i % 64);
            }
            let anchors = [b == b':', b == b'@', b == b'w' || b == b'W'];
            for (plane, a) in planes.iter_mut().skip(P_COLON).zip(anchors) {
                *plane |= u64::from(a) << (i % 64);
            }
        }
        out
    }

    #[test]
    fn every_path_gives_the_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        // A table with a shared non-ASCII kind, and one without.
        let mut kind = [0u8; 256];
        for k in kind.iter_mut().take(128) {
            *k = rand() as u8;
        }
        for k in kind.iter_mut().skip(128) {
            *k = 0x5a;
        }
        let shared = Lut::new(kind);
        assert!(shared.high.is_some());
        kind[200] = 0x11;
        let own = Lut::new(kind);
        assert!(own.high.is_none());
        for lut in [shared, own] {
            for len in [0, 1, 31, 32, 63, 64, 65, 100, 128, 200, 1000] {
                let hay: Vec<u8> = (0..len)
                    .map(|_| match rand() % 4 {
                        0 => b":@wW"[(rand() % 4) as usize],
                        _ => rand() as u8,
                    })
                    .collect();
                let expect = reference(&lut, &hay);
                let mut out = Vec::new();
                planes(&lut, &hay, &mut out);
                assert_eq!(out, expect, "best, {len}");
                avx2_or_scalar_planes(&lut, &hay, &mut out);
                assert_eq!(out, expect, "without AVX-512, {len}");
                scalar_planes(&lut, &hay, &mut out);
                assert_eq!(out, expect, "scalar, {len}");
            }
        }
    }
}
