//! Build script: embeds every `grammars/<lang>/<kind>.scm` query file into the binary, so one
//! binary carries its queries; files in a runtime directory can still override them.

use std::{env, fmt::Write as _, fs, path::Path};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("grammars");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut entries = Vec::new();
    if let Ok(langs) = fs::read_dir(&root) {
        for lang in langs.flatten() {
            let lang_path = lang.path();
            if !lang_path.is_dir() {
                continue;
            }
            println!("cargo:rerun-if-changed={}", lang_path.display());
            let Ok(files) = fs::read_dir(&lang_path) else { continue };
            for file in files.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "scm") {
                    println!("cargo:rerun-if-changed={}", path.display());
                    let lang_name = lang.file_name().to_string_lossy().into_owned();
                    let kind = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                    if let Some(kind) = kind {
                        entries.push((lang_name, kind, path.display().to_string()));
                    }
                }
            }
        }
    }
    entries.sort();
    let mut out = String::from("/// (language, kind, source) for every embedded query file.\n");
    out.push_str("pub static EMBEDDED_QUERIES: &[(&str, &str, &str)] = &[\n");
    for (lang, kind, path) in &entries {
        let _ = writeln!(out, "    ({lang:?}, {kind:?}, include_str!({path:?})),");
    }
    out.push_str("];\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("queries.rs");
    fs::write(dest, out).expect("write generated query table");
}
