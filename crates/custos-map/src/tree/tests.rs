//! Differential tests of the two readers: whatever the fast reader
//! accepts, the full parser reads to the same tree, positions included;
//! what it does not handle exactly, it gives up on.

use super::*;
use marked_yaml::LoaderOptions;

fn full(src: &str) -> Option<Doc> {
    marked_yaml::parse_yaml_with_options(
        0,
        src,
        LoaderOptions::default().error_on_duplicate_keys(true),
    )
    .ok()
    .map(|n| from_marked(&n))
}

/// Whenever the fast reader accepts a text, the full parser accepts it
/// too and gives the same tree, positions included.
fn same(src: &str) -> bool {
    let Some(fast) = fast(src) else {
        return false;
    };
    let Some(full) = full(src) else {
        panic!("fast reader accepted what the full parser rejects:\n{src}");
    };
    assert_eq!(fast.root(), full.root(), "\n{src}");
    true
}

#[test]
fn accepts_the_plain_subset() {
    for src in [
        "a: b\n",
        "a: b",
        "a: b\nc: d\n",
        "  a: b\n  c: d\n",
        "a:\n  b: c\n  d: e\nf: g\n",
        "a:\n  - x\n  - y\nb: z\n",
        "a:\n- x\n- y\nb: z\n",
        "a:\n  - id: x\n    k: v\n  - id: y\n",
        "a:\n- id: x\n  k: v\n- id: y\n",
        "a:\n  -   id: x\n      k: v\n",
        "a:\n  -\n    id: x\n",
        "a: [x, y]\nb: []\nc: {}\n",
        "a: { x: 1, y: [2, 3], z: { w: v } }\n",
        "a: [ {x: 1}, [y] ]\n",
        "a: 'it''s'\nb: \"q\\\"x\\\\y\\n\\u00e9\"\n",
        "\"a b\": c\n'd': e\n",
        "a: { \"x\": 'y' }\n",
        "# top\na: b # c\n\n   \n# x\nc:   d   \n",
        "a: # c\n  b: c\n",
        "a: http://x.example/y?z#w\n",
        "a: b#c\n",
        "a: x, y [z] {w}\n",
        "a: ~\nb: null\nc: true\n",
        "é: ü\nx: { ä: ö }\n",
        "a:\n  b:\n    c:\n      - d\n      - e: f\n        g: [h]\n",
        "a:\n  - - x\n",
        "a: -1\n",
    ] {
        let accepted = same(src);
        let must = !matches!(src, "a:\n  - - x\n" | "a: -1\n");
        assert_eq!(accepted, must, "{src}");
    }
}

#[test]
fn gives_up_on_the_rest() {
    for src in [
        "",
        "# only\n",
        "a:\n",
        "a: b\nc:\n",
        "a: |\n  x\n",
        "a: >\n  x\n",
        "a: &x b\nc: *x\n",
        "a: !t b\n",
        "---\na: b\n",
        "a: b\n...\n",
        "a: b\n  c\n",
        "a: [b,\n  c]\n",
        "a: 'b\n  c'\n",
        "a: b\na: c\n",
        "a: { b: 1, b: 2 }\n",
        "a:\tb\n",
        "a: b\r\n",
        "\u{feff}a: b\n",
        "- a\n",
        "a\n",
        "a: b: c\n",
        "a: [b: c]\n",
        "a: {b}\n",
        "a: {b: }\n",
        "a: [b,]\n",
        "a: [x:y]\n",
        "a: { u: http://x }\n",
        "a: b\n - c\n",
        "a:\n  b: c\n d: e\n",
        "a: \"\\x41\"\n",
        "? a\n: b\n",
        "a : b\n",
        "a:b: c\n",
        "a: [b] c\n",
        "a: [b]#c\n",
        "a:\n  - b\n  c: d\n",
    ] {
        assert!(fast(src).is_none(), "{src:?}");
    }
}

/// A small deterministic generator of YAML texts in (and around) the
/// subset, with random layout: the property is checked on each, and on
/// random mutations of each.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }

    /// Mostly simple, sometimes tricky.
    fn rare(&mut self) -> bool {
        self.below(16) == 0
    }

    fn scalar(&mut self, flow: bool) -> String {
        let plain = [
            "a",
            "id",
            "name",
            "x1",
            "user.contact.email",
            "3y",
            "~",
            "null",
            "true",
            "Null",
            "1.5",
            "a b",
            "a  b",
            "é",
            "日本",
            "a#b",
            "a-b",
            "a_b",
            "a/b",
            "a@b.c",
            "a.b",
            "a'b",
            "a\"b",
            "a\\b",
            "=",
            "<<",
            "a?",
            "a!",
            "a%",
            "x:y",
            "https://x.example/y",
            "a , b",
            "a,b",
            "[a]",
        ];
        let tricky = [
            "{a}",
            "a: b",
            "-a",
            "- a",
            "?a",
            ":a",
            "#a",
            "&a",
            "*a",
            "!a",
            "|",
            ">",
            "'a",
            "\"a",
            "@a",
            "`a",
            "%a",
            "a ",
            " a",
            "",
            "a\tb",
            "a #b",
            "a:",
            "a:b",
            "-",
            "?",
            "---",
            "...",
            "a\u{85}b",
            "a\u{2028}b",
        ];
        let quoted = [
            "'a'",
            "'a b'",
            "'it''s'",
            "''",
            "'a: b'",
            "'#'",
            "\"a\"",
            "\"\"",
            "\"a\\\"b\"",
            "\"a\\\\b\"",
            "\"a\\nb\"",
            "\"\\u00e9\"",
            "\"\\t\"",
            "\"a: b\"",
            "\"[a]\"",
            "\"a\\/b\"",
            "' a '",
            "\" a \"",
        ];
        let quoted_tricky = [
            "\"\\x41\"",
            "'a\nb'",
            "\"a\nb\"",
            "\"\\ud800\"",
            "\"\\N\"",
            "\"\\\n\"",
            "'a",
            "\"a",
        ];
        let s = match (self.rare(), self.below(3) == 0) {
            (true, true) => self.pick(&quoted_tricky),
            (true, false) => self.pick(&tricky),
            (false, true) => self.pick(&quoted),
            (false, false) => self.pick(&plain),
        };
        if flow && self.below(8) == 0 {
            format!("{s} ")
        } else {
            s.to_owned()
        }
    }

    fn key(&mut self) -> String {
        let keys = [
            "a", "b", "id", "name", "kind", "x y", "'q'", "\"d\"", "é", "k1", "k2", "k3", "k4",
            "k5", "k6", "k7",
        ];
        let tricky = [
            "a:b", "a#b", "- a", "[a]", "? a", "a ", "{a}", "&a", "!a", "'a'b",
        ];
        if self.rare() {
            self.pick(&tricky).to_owned()
        } else {
            self.pick(&keys).to_owned()
        }
    }

    fn flow(&mut self, depth: usize) -> String {
        match self.below(if depth > 2 { 1 } else { 3 }) {
            0 => self.scalar(true),
            1 => {
                let n = self.below(4);
                let items: Vec<String> = (0..n).map(|_| self.flow(depth + 1)).collect();
                let sep = if self.rare() {
                    self.pick(&[",,", ", ,", ",\n"])
                } else {
                    self.pick(&[", ", ",", " , ", ",  "])
                };
                let pad = self.pick(&["", " "]);
                format!("[{pad}{}{pad}]", items.join(sep))
            }
            _ => {
                let n = self.below(4);
                let items: Vec<String> = (0..n)
                    .map(|_| {
                        let colon = if self.rare() {
                            self.pick(&[":", " : ", ":\n"])
                        } else {
                            self.pick(&[": ", ":  "])
                        };
                        format!("{}{colon}{}", self.key(), self.flow(depth + 1))
                    })
                    .collect();
                let pad = self.pick(&["", " "]);
                format!("{{{pad}{}{pad}}}", items.join(", "))
            }
        }
    }

    fn comment(&mut self) -> &'static str {
        match self.below(24) {
            0 | 1 => " # note",
            2 => " #",
            3 => "#x",
            4 | 5 => "  ",
            _ => "",
        }
    }

    fn blank_lines(&mut self, out: &mut String) {
        match self.below(10) {
            0 => out.push('\n'),
            1 => out.push_str("# c\n"),
            2 => out.push_str("   \n"),
            3 => out.push_str("  # c\n"),
            _ => {}
        }
    }

    /// A block mapping at `indent`, its first key already indented when
    /// `inline` (after `- `).
    fn block_map(&mut self, out: &mut String, indent: usize, depth: usize, inline: bool) {
        let n = 1 + self.below(4);
        for i in 0..n {
            if !(inline && i == 0) {
                self.blank_lines(out);
                out.push_str(&" ".repeat(indent));
            }
            out.push_str(&self.key());
            out.push(':');
            self.value(out, indent, depth);
        }
    }

    /// A value after `key:` at `indent`.
    fn value(&mut self, out: &mut String, indent: usize, depth: usize) {
        let choice = if depth > 2 {
            self.below(2)
        } else {
            self.below(6)
        };
        match choice {
            0 => {
                let sp = if self.rare() {
                    ""
                } else {
                    self.pick(&[" ", "  "])
                };
                out.push_str(sp);
                out.push_str(&self.scalar(false));
                out.push_str(self.comment());
                out.push('\n');
            }
            1 => {
                out.push(' ');
                out.push_str(&self.flow(0));
                out.push_str(self.comment());
                out.push('\n');
            }
            2 => {
                out.push_str(self.comment());
                out.push('\n');
                let step = 1 + self.below(3);
                self.blank_lines(out);
                out.push_str(&" ".repeat(indent + step));
                self.block_map(out, indent + step, depth + 1, true);
            }
            _ => {
                out.push_str(self.comment());
                out.push('\n');
                let step = if self.below(2) == 0 { 0 } else { 2 };
                self.block_seq(out, indent + step, depth + 1);
            }
        }
    }

    fn block_seq(&mut self, out: &mut String, indent: usize, depth: usize) {
        let n = 1 + self.below(3);
        for _ in 0..n {
            self.blank_lines(out);
            out.push_str(&" ".repeat(indent));
            out.push('-');
            let sp = if self.rare() {
                ""
            } else {
                self.pick(&[" ", "  ", "   "])
            };
            match self.below(if depth > 2 { 2 } else { 4 }) {
                0 => {
                    out.push_str(sp);
                    out.push_str(&self.scalar(false));
                    out.push_str(self.comment());
                    out.push('\n');
                }
                1 => {
                    out.push(' ');
                    out.push_str(&self.flow(0));
                    out.push('\n');
                }
                2 => {
                    out.push(' ');
                    out.push_str(sp);
                    let col = indent + 2 + sp.len();
                    self.block_map(out, col, depth + 1, true);
                }
                _ => {
                    out.push_str(self.comment());
                    out.push('\n');
                    let step = 1 + self.below(3);
                    if self.below(3) == 0 {
                        self.block_seq(out, indent + step, depth + 1);
                    } else {
                        out.push_str(&" ".repeat(indent + step));
                        self.block_map(out, indent + step, depth + 1, true);
                    }
                }
            }
        }
    }

    fn doc(&mut self) -> String {
        let mut out = String::new();
        let indent = if self.below(10) == 0 { 2 } else { 0 };
        out.push_str(&" ".repeat(indent));
        self.block_map(&mut out, indent, 0, true);
        if self.below(10) == 0 {
            out.pop();
        }
        out
    }

    fn mutate(&mut self, src: &str) -> String {
        let mut chars: Vec<char> = src.chars().collect();
        let bits = [
            ' ', ' ', '\n', ':', '-', '#', ',', '[', ']', '{', '}', '\'', '"', '\\', 'a', '\t',
            '&', '*', '!', '|', '>', '?', '%', 'é', '\r', '\u{feff}', '.',
        ];
        for _ in 0..1 + self.below(3) {
            if chars.is_empty() {
                break;
            }
            let at = self.below(chars.len());
            match self.below(3) {
                0 => {
                    chars.remove(at);
                }
                1 => chars.insert(at, bits[self.below(bits.len())]),
                _ => chars[at] = bits[self.below(bits.len())],
            }
        }
        chars.into_iter().collect()
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

    /// The differential property on generated texts and mutations.
    #[test]
    fn fast_reader_agrees_with_full_parser(seed in 1u64..) {
        let mut g = Gen(seed);
        let src = g.doc();
        same(&src);
        for _ in 0..4 {
            let m = g.mutate(&src);
            same(&m);
        }
    }
}

/// The generator produces texts the fast reader accepts often enough for
/// the property to mean something.
#[test]
fn generator_covers_the_subset() {
    let (mut fast_ok, mut mutated_ok) = (0, 0);
    for seed in 1..=2000u64 {
        let mut g = Gen(seed * 7919);
        let src = g.doc();
        if same(&src) {
            fast_ok += 1;
        }
        if same(&g.mutate(&src)) {
            mutated_ok += 1;
        }
    }
    assert!(
        fast_ok > 200,
        "only {fast_ok} of 2000 generated texts read fast"
    );
    assert!(
        mutated_ok > 50,
        "only {mutated_ok} of 2000 mutated texts read fast"
    );
    eprintln!("read fast: {fast_ok} generated, {mutated_ok} mutated of 2000");
}

#[test]
fn same_as_full_parser_on_shipped_maps() {
    // The demo map has block scalars (`>-`): the full parser reads it.
    assert!(!same(crate::DEMO_MAP));
    let out = crate::yaml::to_yaml(&crate::load_str(crate::DEMO_MAP, "demo.yaml").unwrap().0);
    assert!(same(&out));
}
