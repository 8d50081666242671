//! Synthetic but realistic source files for the benchmarks.
#![allow(dead_code)]

/// A Rust file of exactly `lines` lines: structs, impls, functions with bodies, comments, and some
/// non-ASCII text in strings (so UTF-16 conversion has real work to do).
pub fn rust_file(lines: usize) -> String {
    items(lines, usize::MAX)
}

/// The same items, grouped `per_mod` to a `mod` block: the shape of most hand-written large files,
/// where the top level holds tens of nodes rather than thousands.
pub fn rust_file_in_mods(lines: usize, per_mod: usize) -> String {
    items(lines, per_mod)
}

fn items(lines: usize, per_mod: usize) -> String {
    let mut out = String::with_capacity(lines * 32);
    let mut n = 0;
    let mut i = 0;
    while n + 14 <= lines {
        if per_mod != usize::MAX && i % per_mod == 0 {
            if i > 0 {
                out.push_str("}\n");
                n += 1;
            }
            out.push_str(&format!("mod group{i} {{\n"));
            n += 1;
        }
        out.push_str(&format!(
            "/// Item {i}: handles the résumé case.\n\
             pub struct Item{i} {{\n    id: u64,\n    name: String,\n}}\n\
             impl Item{i} {{\n    pub fn label(&self) -> String {{\n        \
             let prefix = \"ítem-😀\";\n        format!(\"{{prefix}}{{}}\", self.id)\n    }}\n}}\n\n"
        ));
        n += 12;
        i += 1;
    }
    if per_mod != usize::MAX && i > 0 {
        out.push_str("}\n");
        n += 1;
    }
    while n < lines {
        out.push_str("// filler\n");
        n += 1;
    }
    out
}
