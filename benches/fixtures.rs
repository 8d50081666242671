//! Synthetic but realistic source files for the benchmarks.
#![allow(dead_code)]

/// A Rust file of exactly `lines` lines: structs, impls, functions with bodies, comments, and some
/// non-ASCII text in strings (so UTF-16 conversion has real work to do).
pub fn rust_file(lines: usize) -> String {
    let mut out = String::with_capacity(lines * 32);
    let mut n = 0;
    let mut i = 0;
    while n + 12 <= lines {
        out.push_str(&format!(
            "/// Item {i}: handles the résumé case.\n\
             pub struct Item{i} {{\n    id: u64,\n    name: String,\n}}\n\
             impl Item{i} {{\n    pub fn label(&self) -> String {{\n        \
             let prefix = \"ítem-😀\";\n        format!(\"{{prefix}}{{}}\", self.id)\n    }}\n}}\n\n"
        ));
        n += 12;
        i += 1;
    }
    while n < lines {
        out.push_str("// filler\n");
        n += 1;
    }
    out
}
