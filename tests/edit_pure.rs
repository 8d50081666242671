//! The pure edit pieces: line diffs (a property test, and `git apply` on the unified diffs),
//! cleaning of model answers (`$0`..`$1` marks the selection in fixtures), and the rendered
//! prompt for each intent.
//!
//! In snapshots a `\r` shows as `␍`, so that snapshots hold none.

use std::process::Command;

use expect_test::{Expect, expect};
use proptest::prelude::*;
use quill::edit::{
    EditDiagnostic, EditInput, Intent, LineEdit, Refusal, Severity, apply, clean, edit_prompt, line_edits, unified,
};
use quill::provider::Role;
use ropey::Rope;

fn show(s: &str) -> String {
    s.replace('\r', "␍")
}

// ---------------------------------------------------------------------------------------------
// line_edits

/// Texts built from a few lines (ASCII, non-ASCII, blank, indented) and every kind of ending,
/// so that diffs have repeats to match and all the line-break cases to get right.
fn text() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec!["", "a", "b", "fn x() {", "    é中文", "}", "  \t", "🦀 crab"]);
    let end = prop::sample::select(vec!["\n", "\n", "\r\n", "\r"]);
    (prop::collection::vec((line, end), 0..24), prop::sample::select(vec!["", "tail", "é"]))
        .prop_map(|(lines, last)| lines.into_iter().map(|(l, e)| format!("{l}{e}")).collect::<String>() + last)
}

/// A replacement sharing most of its lines with the original: some lines dropped, changed or
/// added, as a model's answer does.
fn edited(original: &str, seed: u64) -> String {
    let mut out = String::new();
    let mut s = seed;
    for line in original.split_inclusive('\n') {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        match (s >> 60) % 8 {
            0 => {}
            1 => out.push_str("    inserted é\n"),
            2 => out.push_str(&line.replace('\n', "\r\n")),
            3 => out.push_str(&line.to_uppercase()),
            _ => out.push_str(line),
        }
        out.push_str(if (s >> 50).is_multiple_of(16) { "new\n" } else { "" });
    }
    out
}

fn check_edits(original: &str, replacement: &str) -> Result<(), TestCaseError> {
    let edits = line_edits(original, replacement);
    prop_assert_eq!(apply(original, &edits), replacement);
    let mut at = 0;
    for e in &edits {
        prop_assert!(e.old.start >= at && e.old.start <= e.old.end, "ordered, non-overlapping: {:?}", edits);
        prop_assert!(original.is_char_boundary(e.old.start) && original.is_char_boundary(e.old.end));
        prop_assert_ne!(&original[e.old.clone()], e.new_text.as_str(), "an edit that changes nothing");
        // Each edit starts at a line start (the original's line breaks, including lone `\r`).
        let before = &original[..e.old.start];
        prop_assert!(before.is_empty() || before.ends_with('\n') || before.ends_with('\r'));
        at = e.old.end;
    }
    Ok(())
}

proptest! {
    #[test]
    fn line_edits_rebuild_the_replacement_from_random_texts(a in text(), b in text()) {
        check_edits(&a, &b)?;
    }

    #[test]
    fn line_edits_rebuild_the_replacement_from_nearby_texts(a in text(), seed in any::<u64>()) {
        check_edits(&a, &edited(&a, seed))?;
    }
}

#[test]
fn line_edits_touch_only_changed_runs() {
    let original = "fn a() {\n    one();\n    two();\n}\n\nfn b() {\n    three();\n}\n";
    let replacement = "fn a() {\n    one();\n    deux();\n}\n\nfn b() {\n    three();\n    four();\n}\n";
    let edits = line_edits(original, replacement);
    let shown: Vec<String> = edits
        .iter()
        .map(|LineEdit { old, new_text }| format!("{old:?} {:?} -> {new_text:?}", &original[old.clone()]))
        .collect();
    expect![[r#"
        [
            "20..31 \"    two();\\n\" -> \"    deux();\\n\"",
            "56..56 \"\" -> \"    four();\\n\"",
        ]
    "#]]
    .assert_debug_eq(&shown);
}

#[test]
fn line_edits_of_equal_texts_are_empty() {
    assert!(line_edits("a\r\nb", "a\r\nb").is_empty());
    assert!(line_edits("", "").is_empty());
    assert_eq!(line_edits("", "x"), [LineEdit { old: 0..0, new_text: "x".into() }]);
    assert_eq!(line_edits("x\n", ""), [LineEdit { old: 0..2, new_text: String::new() }]);
}

// ---------------------------------------------------------------------------------------------
// unified

#[test]
fn unified_diff_snapshot() {
    let original = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten";
    let replacement = "one\n2\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";
    expect![[r#"
        --- a/src/lib.rs
        +++ b/src/lib.rs
        @@ -1,3 +1,3 @@
         one
        -two
        +2
         three
        @@ -9,2 +9,2 @@
         nine
        -ten
        \ No newline at end of file
        +ten
    "#]]
    .assert_eq(&unified("src/lib.rs", original, replacement, 1));
    assert_eq!(unified("x", "same\n", "same\n", 3), "");
}

/// Runs `git apply` (check, then for real) on the diff in a scratch directory and returns the
/// file afterwards.
fn git_apply(original: &str, replacement: &str, context: usize) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = "src/some file.txt";
    std::fs::create_dir_all(dir.path().join("src")).expect("mkdir");
    std::fs::write(dir.path().join(path), original).expect("write original");
    let patch = unified(path, original, replacement, context);
    std::fs::write(dir.path().join("change.patch"), &patch).expect("write patch");
    // Zero-context hunks are anchored nowhere; git wants to be told that is intended.
    let zero = if context == 0 { "--unidiff-zero" } else { "--verbose" };
    for args in [&["apply", "--check", zero, "change.patch"][..], &["apply", zero, "change.patch"][..]] {
        let out = Command::new("git").args(args).current_dir(dir.path()).output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} refused the patch: {}\n{patch}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::read_to_string(dir.path().join(path)).expect("read back")
}

#[test]
fn git_applies_unified_diffs() {
    let cases: &[(&str, &str)] = &[
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb\nc", "a\nb\nc\n"),
        ("a\nb\nc\n", "a\nb\nc"),
        ("a\nb\nc", "a\nb\nC"),
        ("a\nb\n", "top\na\nb\n"),
        ("a\nb\n", "a\nb\nend\n"),
        ("a\r\nb\r\nc\r\n", "a\r\nB\r\nc\r\n"),
        ("a\r\nb\r\n", "a\nb\n"),
        ("é\n中\n🦀\n", "é\n中文\n🦀\n"),
        ("x\n", ""),
        ("", "new\nfile\n"),
        ("one\rtwo\n", "one\rTWO\n"),
    ];
    for &(original, replacement) in cases {
        for context in [0, 1, 3] {
            assert_eq!(git_apply(original, replacement, context), replacement, "{original:?} -> {replacement:?}");
        }
    }
    // A larger file with scattered changes, so hunks split and merge.
    let original: String = (0..200).map(|i| format!("line {i}\n")).collect();
    let replacement: String = (0..200)
        .filter(|i| i % 37 != 5)
        .map(|i| if i % 23 == 0 { format!("changed {i}\n") } else { format!("line {i}\n") })
        .collect();
    for context in [0, 2, 3, 10] {
        assert_eq!(git_apply(&original, &replacement, context), replacement);
    }
}

// ---------------------------------------------------------------------------------------------
// clean

fn check_clean(answer: &str, selection: &str, language: Option<&str>, expect: Expect) {
    let shown = match clean(answer, selection, language) {
        Ok(c) => format!("{:?} reindented={:?}\n{}", c.source, c.reindented, show(&c.text).replace('\n', "⏎\n")),
        Err(r) => format!("refused: {r}"),
    };
    expect.assert_eq(&shown);
}

#[test]
fn clean_strips_a_single_fence_and_the_prose_around_it() {
    check_clean(
        "Here is the updated code:\n\n```rust\nfn a() -> u32 {\n    2\n}\n```\n\nI changed the return value.",
        "fn a() -> u32 {\n    1\n}\n",
        Some("rust"),
        expect![[r#"
            Fence { lang: Some("rust") } reindented=None
            fn a() -> u32 {⏎
                2⏎
            }⏎
        "#]],
    );
}

#[test]
fn clean_accepts_tildes_long_fences_and_unclosed_fences() {
    check_clean(
        "~~~~python\nx = 1\n```\nstill inside\n~~~~\n",
        "x = 0\n",
        Some("python"),
        expect![[r#"
            Fence { lang: Some("python") } reindented=None
            x = 1⏎
            ```⏎
            still inside⏎
        "#]],
    );
    check_clean(
        "```go\nreturn nil\n",
        "return err\n",
        Some("go"),
        expect![[r#"
            Fence { lang: Some("go") } reindented=None
            return nil⏎
        "#]],
    );
}

#[test]
fn clean_picks_among_several_fences() {
    let answer = "First the shell:\n```sh\ncargo add serde --features derive\n```\nThen:\n```rs\nuse serde::Serialize;\n```\nOr:\n```rust\n#[derive(Serialize)]\nstruct A;\n```\n";
    check_clean(
        answer,
        "struct A;\n",
        Some("rust"),
        expect![[r#"
            Chosen { index: 2, count: 3, lang: Some("rust"), by_language: true } reindented=None
            #[derive(Serialize)]⏎
            struct A;⏎
        "#]],
    );
    check_clean(
        answer,
        "struct A;\n",
        None,
        expect![[r#"
            Chosen { index: 0, count: 3, lang: Some("sh"), by_language: false } reindented=None
            cargo add serde --features derive⏎
        "#]],
    );
}

#[test]
fn clean_keeps_the_selection_s_indentation_line_endings_and_newlines() {
    // The model dropped the method's indentation and used LF in a CRLF file.
    check_clean(
        "```\nfn get(&self) -> u32 {\n    self.x\n}\n```",
        "\r\n    fn get(&self) -> u32 {\r\n        self.y\r\n    }\r\n\r\n",
        Some("rust"),
        expect![[r#"
            Fence { lang: None } reindented=Some("    ")
            ␍⏎
                fn get(&self) -> u32 {␍⏎
                    self.x␍⏎
                }␍⏎
            ␍⏎
        "#]],
    );
    // Tabs in the selection, spaces in the answer: the answer's base is replaced.
    check_clean(
        "```c\n  x++;\n\n  y++;\n```",
        "\t\tx--;\n",
        Some("c"),
        expect![[r#"
            Fence { lang: Some("c") } reindented=Some("\t\t")
            		x++;⏎
            ⏎
            		y++;⏎
        "#]],
    );
    // No final newline in the selection: none in the replacement, whatever the model sent.
    check_clean(
        "```js\nconst x = 2;\n\n```\n",
        "const x = 1;",
        Some("javascript"),
        expect![[r#"
            Fence { lang: Some("js") } reindented=None
            const x = 2;"#]],
    );
}

#[test]
fn clean_takes_a_bare_answer_as_code() {
    check_clean(
        "def f(x):\n    return x + 1\n```\n",
        "def f(x):\n    return x\n",
        Some("python"),
        expect![[r#"
            Bare reindented=None
            def f(x):⏎
                return x + 1⏎
        "#]],
    );
}

#[test]
fn clean_refuses_prose_and_empty_answers() {
    check_clean(
        "I cannot see any problem with this code. The function `parse()` already handles the\nempty case, so no change is needed.",
        "fn parse(s: &str) -> u32 {\n    s.len() as u32\n}\n",
        Some("rust"),
        expect!["refused: the model answered in prose instead of code; the selection was left unchanged"],
    );
    check_clean("", "x\n", None, expect!["refused: the model returned no code; the selection was left unchanged"]);
    check_clean(
        "Sure!\n```python\n\n```",
        "x = 1\n",
        Some("python"),
        expect!["refused: the model returned no code; the selection was left unchanged"],
    );
    assert!(matches!(clean("Looks good to me, nothing to change.", "a = 1\n", None), Err(Refusal::Prose { .. })));
}

#[test]
fn clean_does_not_call_prose_prose_when_the_selection_is_prose() {
    check_clean(
        "This library parses TOML files quickly.\nIt has no dependencies at all.",
        "This library parses TOML.\nIt has few dependencies.\n",
        Some("markdown"),
        expect![[r#"
            Bare reindented=None
            This library parses TOML files quickly.⏎
            It has no dependencies at all.⏎
        "#]],
    );
}

// ---------------------------------------------------------------------------------------------
// prompts

/// Renders the prompt for a fixture whose selection is marked `$0`..`$1`.
fn render_prompt(fixture: &str, intent: Intent, instruction: &str, diagnostics: &[EditDiagnostic]) -> String {
    let start = fixture.find("$0").expect("fixture has $0");
    let end = fixture.find("$1").expect("fixture has $1") - 2;
    let text = Rope::from_str(&fixture.replacen("$0", "", 1).replacen("$1", "", 1));
    let input = EditInput {
        path: "src/shapes.rs",
        language_id: "rust",
        text: &text,
        selection: start..end,
        instruction,
        intent,
        diagnostics,
    };
    let req = edit_prompt(&input);
    let mut out = format!(
        "prefill={:?} stop={:?} max_tokens={} temperature={}\n",
        req.prefill, req.stop, req.max_tokens, req.temperature
    );
    for m in &req.messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        out.push_str(&format!("=== {role}\n{}\n", m.content));
    }
    show(&out)
}

const SHAPES: &str = "use std::f64::consts::PI;\n\npub struct Circle {\n    pub r: f64,\n}\n\nimpl Circle {\n$0    pub fn area(&self) -> f64 {\n        PI * self.r * self.r as f32\n    }\n$1\n    pub fn scale(&mut self, k: f64) {\n        self.r *= k;\n    }\n}\n";

#[test]
fn prompt_edit() {
    expect![[r#"
        prefill=None stop=[] max_tokens=4096 temperature=0.1
        === system
        You are a coding assistant working inside the user's editor. Rewrite the selected rust code as the instruction asks. Answer with only the replacement for the selected code, in one fenced code block, with no explanation before or after it. Rewrite only the selected code, never the context around it, and keep its indentation.
        === user
        File: src/shapes.rs (rust)

        Code before the selection (context only: do not repeat it):
        ```rust
        use std::f64::consts::PI;

        pub struct Circle {
            pub r: f64,
        }

        impl Circle {
        ```

        The selected code, lines 8-10:
        ```rust
            pub fn area(&self) -> f64 {
                PI * self.r * self.r as f32
            }
        ```

        Code after the selection (context only: do not repeat it):
        ```rust

            pub fn scale(&mut self, k: f64) {
                self.r *= k;
            }
        }
        ```

        Instruction: use powi

    "#]]
    .assert_eq(&render_prompt(SHAPES, Intent::Edit, "use powi", &[]));
}

#[test]
fn prompt_fix_lists_the_diagnostics() {
    let diagnostics =
        [EditDiagnostic { message: "cannot multiply `f64` by `f32`".into(), severity: Severity::Error, line: 8 }];
    expect![[r#"
        prefill=None stop=[] max_tokens=4096 temperature=0.1
        === system
        You are a coding assistant working inside the user's editor. Fix the listed diagnostics in the selected rust code, changing as little as possible. Answer with only the replacement for the selected code, in one fenced code block, with no explanation before or after it. Rewrite only the selected code, never the context around it, and keep its indentation.
        === user
        File: src/shapes.rs (rust)

        Code before the selection (context only: do not repeat it):
        ```rust
        use std::f64::consts::PI;

        pub struct Circle {
            pub r: f64,
        }

        impl Circle {
        ```

        The selected code, lines 8-10:
        ```rust
            pub fn area(&self) -> f64 {
                PI * self.r * self.r as f32
            }
        ```

        Code after the selection (context only: do not repeat it):
        ```rust

            pub fn scale(&mut self, k: f64) {
                self.r *= k;
            }
        }
        ```

        Diagnostics in the selection:
        - line 9: error: cannot multiply `f64` by `f32`

        Instruction: Fix the diagnostics listed above.

    "#]]
    .assert_eq(&render_prompt(SHAPES, Intent::Fix, "", &diagnostics));
}

#[test]
fn prompt_document() {
    expect![[r#"
        prefill=None stop=[] max_tokens=4096 temperature=0.1
        === system
        You are a coding assistant working inside the user's editor. Add documentation comments to the selected rust code, in `///` doc comments before each item (Markdown inside). Do not change the code itself. Answer with only the replacement for the selected code, in one fenced code block, with no explanation before or after it. Rewrite only the selected code, never the context around it, and keep its indentation.
        === user
        File: src/shapes.rs (rust)

        Code before the selection (context only: do not repeat it):
        ```rust
        use std::f64::consts::PI;

        pub struct Circle {
            pub r: f64,
        }

        impl Circle {
        ```

        The selected code, lines 8-10:
        ```rust
            pub fn area(&self) -> f64 {
                PI * self.r * self.r as f32
            }
        ```

        Code after the selection (context only: do not repeat it):
        ```rust

            pub fn scale(&mut self, k: f64) {
                self.r *= k;
            }
        }
        ```

        Instruction: Add documentation comments to the selected code.

    "#]]
    .assert_eq(&render_prompt(SHAPES, Intent::Document, "", &[]));
}

#[test]
fn prompt_tests_has_no_file_context() {
    expect![[r#"
        prefill=None stop=[] max_tokens=4096 temperature=0.1
        === system
        You are a coding assistant working inside the user's editor. Write tests for the selected rust code: a `#[cfg(test)] mod tests { use super::*; ... }` module of `#[test]` functions. Cover normal cases, edge cases and errors. Answer with only the test code, in one fenced code block, with no explanation before or after it.
        === user
        File: src/shapes.rs (rust)

        The selected code, lines 8-10:
        ```rust
            pub fn area(&self) -> f64 {
                PI * self.r * self.r as f32
            }
        ```

        Instruction: Write tests for the selected code.

    "#]]
    .assert_eq(&render_prompt(SHAPES, Intent::Tests, "", &[]));
}

#[test]
fn prompt_explain() {
    expect![[r#"
        prefill=None stop=[] max_tokens=4096 temperature=0.3
        === system
        You are a coding assistant working inside the user's editor. Explain the selected rust code to the user: what it does, how, and anything surprising. Answer in concise prose (Markdown allowed); do not rewrite the code.
        === user
        File: src/shapes.rs (rust)

        Code before the selection (context only: do not repeat it):
        ```rust
        use std::f64::consts::PI;

        pub struct Circle {
            pub r: f64,
        }

        impl Circle {
        ```

        The selected code, lines 8-10:
        ```rust
            pub fn area(&self) -> f64 {
                PI * self.r * self.r as f32
            }
        ```

        Code after the selection (context only: do not repeat it):
        ```rust

            pub fn scale(&mut self, k: f64) {
                self.r *= k;
            }
        }
        ```

        Instruction: why the cast?

    "#]]
    .assert_eq(&render_prompt(SHAPES, Intent::Explain, "why the cast?", &[]));
}

#[test]
fn prompt_context_is_capped_at_50_lines_and_fences_outgrow_the_code() {
    let mut fixture: String = (0..120).map(|i| format!("line {i}\n")).collect();
    fixture.insert_str(fixture.find("line 60\n").expect("line 60"), "$0");
    fixture.insert_str(fixture.find("line 61\n").expect("line 61"), "```\n$1");
    let text = Rope::from_str(&fixture.replacen("$0", "", 1).replacen("$1", "", 1));
    let start = fixture.find("$0").expect("$0");
    let end = fixture.find("$1").expect("$1") - 2;
    let input = EditInput {
        path: "notes.md",
        language_id: "markdown",
        text: &text,
        selection: start..end,
        instruction: "tidy",
        intent: Intent::Edit,
        diagnostics: &[],
    };
    let user = &edit_prompt(&input).messages[1].content;
    assert!(user.contains("\nline 10\n") && !user.contains("\nline 9\n"), "50 lines before");
    assert!(user.contains("\nline 110\n") && !user.contains("\nline 111\n"), "50 lines after");
    assert!(user.contains("````markdown\nline 60\n```\n````\n"), "fence longer than the selection's");
    // Out-of-range and mid-character selections are clamped, not panics.
    let text = Rope::from_str("é\n");
    let input = EditInput { text: &text, selection: 1..99, ..input };
    assert!(edit_prompt(&input).messages[1].content.contains("lines 1-1"));
}
