//! Where "Generate tests" puts the tests for a source file, per language convention. Pure: the
//! caller says which paths exist (on disk or open in the editor).

use std::path::{Path, PathBuf};

/// Where the tests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TestTarget {
    /// Appended at the end of the source file itself (Rust's `#[cfg(test)] mod tests`).
    SameFile,
    /// A separate file: created when it does not exist, appended to when it does.
    File(PathBuf),
}

/// The test location for `source` in language `language_id`. `is_dir` answers whether a
/// directory exists (Ruby picks RSpec's `_spec.rb` when a `spec/` directory is above the file).
pub fn test_target(source: &Path, language_id: &str, is_dir: impl Fn(&Path) -> bool) -> TestTarget {
    let Some(name) = source.file_name().and_then(|n| n.to_str()) else { return TestTarget::SameFile };
    let (stem, ext) = match name.rsplit_once('.') {
        Some((s, e)) if !s.is_empty() => (s, Some(e)),
        _ => (name, None),
    };
    let dir = source.parent().unwrap_or_else(|| Path::new(""));
    let ext_or = |default: &str| ext.unwrap_or(default).to_owned();
    let file = match language_id {
        "rust" => return TestTarget::SameFile,
        "python" => format!("test_{stem}.py"),
        "go" => format!("{stem}_test.go"),
        "javascript" | "javascriptreact" | "typescript" | "typescriptreact" | "tsx" => {
            format!("{stem}.test.{}", ext_or("js"))
        }
        "java" => format!("{}Test.java", capitalized(stem)),
        "kotlin" => format!("{}Test.{}", capitalized(stem), ext_or("kt")),
        "scala" => format!("{}Spec.scala", capitalized(stem)),
        "csharp" => format!("{}Tests.cs", capitalized(stem)),
        "swift" => format!("{}Tests.swift", capitalized(stem)),
        "php" => format!("{}Test.php", capitalized(stem)),
        "ruby" if dir.ancestors().any(|a| is_dir(&a.join("spec"))) => format!("{stem}_spec.rb"),
        "ruby" => format!("test_{stem}.rb"),
        "lua" => format!("{stem}_spec.lua"),
        "bash" | "shellscript" | "sh" => format!("{stem}.bats"),
        _ => match ext {
            Some(e) => format!("test_{stem}.{e}"),
            None => format!("{stem}_test"),
        },
    };
    // A file that already follows the convention (asking for tests of a test file) gets them
    // appended rather than a `test_test_…` sibling.
    if is_test_name(stem) {
        return TestTarget::File(source.to_path_buf());
    }
    TestTarget::File(dir.join(file))
}

fn is_test_name(stem: &str) -> bool {
    let lower = stem.to_ascii_lowercase();
    lower.starts_with("test_")
        || lower.ends_with("_test")
        || lower.ends_with(".test")
        || lower.ends_with(".spec")
        || lower.ends_with("_spec")
        || stem.ends_with("Test")
        || stem.ends_with("Tests")
        || stem.ends_with("Spec")
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str, lang: &str) -> TestTarget {
        test_target(Path::new(path), lang, |_| false)
    }

    fn file(path: &str) -> TestTarget {
        TestTarget::File(PathBuf::from(path))
    }

    #[test]
    fn each_language_follows_its_convention() {
        assert_eq!(target("/w/src/lib.rs", "rust"), TestTarget::SameFile);
        assert_eq!(target("/w/pkg/calc.py", "python"), file("/w/pkg/test_calc.py"));
        assert_eq!(target("/w/calc.go", "go"), file("/w/calc_test.go"));
        assert_eq!(target("/w/calc.ts", "typescript"), file("/w/calc.test.ts"));
        assert_eq!(target("/w/calc.jsx", "javascriptreact"), file("/w/calc.test.jsx"));
        assert_eq!(target("/w/Ledger.java", "java"), file("/w/LedgerTest.java"));
        assert_eq!(target("/w/ledger.java", "java"), file("/w/LedgerTest.java"));
        assert_eq!(target("/w/calc.rb", "ruby"), file("/w/test_calc.rb"));
        assert_eq!(target("/w/calc.c", "c"), file("/w/test_calc.c"));
        assert_eq!(target("/w/Makefile", "make"), file("/w/Makefile_test"));
    }

    #[test]
    fn ruby_uses_rspec_when_a_spec_dir_is_above() {
        let t = test_target(Path::new("/w/lib/calc.rb"), "ruby", |p| p == Path::new("/w/spec"));
        assert_eq!(t, file("/w/lib/calc_spec.rb"));
    }

    #[test]
    fn a_test_file_gets_its_own_tests_appended() {
        assert_eq!(target("/w/test_calc.py", "python"), file("/w/test_calc.py"));
        assert_eq!(target("/w/calc_test.go", "go"), file("/w/calc_test.go"));
        assert_eq!(target("/w/calc.test.ts", "typescript"), file("/w/calc.test.ts"));
    }
}
