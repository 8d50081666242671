//! `complete::context`: the prefix and suffix cut by a char budget at whole lines (any line break,
//! non-ASCII text), and the Jaccard snippets from other documents.

use std::{fmt::Write as _, time::Duration};

use expect_test::expect;
use quill::{
    complete::context::{self, Budget, DocContext, OtherDoc, SnippetOptions},
    document::DEFAULT_MAX_PARSE_BYTES,
    store::{Snapshot, Store},
};
use ropey::Rope;

const CURSOR: &str = "$0";

fn snapshot(language_id: &str, text: &str) -> Snapshot {
    let store = Store::new();
    store.open("file:///doc", language_id, 1, text, DEFAULT_MAX_PARSE_BYTES);
    store.snapshot("file:///doc").expect("document is open")
}

/// A budget of exactly `prefix` and `suffix` chars.
fn budget(prefix: usize, suffix: usize) -> Budget {
    let total = prefix + suffix;
    Budget {
        context_tokens: total,
        chars_per_token: 1.0,
        prefix_share: prefix as f32 / total as f32,
        suffix_share: suffix as f32 / total as f32,
    }
}

fn context(fixture: &str, budget: &Budget) -> DocContext {
    let cursor = fixture.find(CURSOR).expect("fixture has a $0 marker");
    let snap = snapshot("plaintext", &fixture.replacen(CURSOR, "", 1));
    let ctx = context::doc_context(&snap, cursor, budget);
    // The invariants every case keeps.
    let text = snap.text.to_string();
    assert_eq!(ctx.cursor, cursor);
    assert_eq!(&text[ctx.prefix_start..ctx.cursor], ctx.prefix);
    assert!(text[ctx.cursor..].starts_with(&ctx.suffix));
    assert!(ctx.prefix.ends_with(&ctx.line_prefix) && ctx.suffix.starts_with(&ctx.line_suffix));
    assert!(!ctx.line_prefix.contains(['\n', '\r']) && !ctx.line_suffix.contains(['\n', '\r']));
    ctx
}

fn render(ctx: &DocContext) -> String {
    format!(
        "prefix {:?} (from byte {})\nsuffix {:?}\nline {:?} | {:?}\n",
        ctx.prefix, ctx.prefix_start, ctx.suffix, ctx.line_prefix, ctx.line_suffix
    )
}

#[test]
fn prefix_and_suffix_are_whole_lines_within_budget() {
    let b = budget(12, 8);
    let cases = [
        ("lines", "aaaa\nbbbb\ncccc\ndd$0dd\neeee\nffff\n"),
        ("crlf", "aaaa\r\nbbbb\r\ncccc\r\ndd$0dd\r\neeee\r\nffff\r\n"),
        ("lone-cr", "aaaa\rbbbb\rcccc\rdd$0dd\reeee\rffff\r"),
        // Chars, not bytes: each line is 4 chars but up to 16 bytes.
        ("non-ascii", "😀😀😀😀\néééé\n中中中中\n中$0中\néééé\n😀😀😀😀\n"),
        ("long-line-prefix", "aaaa\n0123456789abcdefghij$0xy\nbbbb\n"),
        ("long-line-suffix", "aaaa\nxy$00123456789abcdefghij\nbbbb\n"),
        ("start", "$0aaaa\nbbbb\n"),
        ("end", "aaaa\nbbbb\n$0"),
        ("end-no-newline", "aaaa\nbb$0"),
        ("empty", "$0"),
    ];
    let mut out = String::new();
    for (name, fixture) in cases {
        let _ = writeln!(out, "{name}:\n{}", render(&context(fixture, &b)));
    }
    expect![[r#"
        lines:
        prefix "bbbb\ncccc\ndd" (from byte 5)
        suffix "dd\neeee\n"
        line "dd" | "dd"

        crlf:
        prefix "cccc\r\ndd" (from byte 12)
        suffix "dd\r\n"
        line "dd" | "dd"

        lone-cr:
        prefix "bbbb\rcccc\rdd" (from byte 5)
        suffix "dd\reeee\r"
        line "dd" | "dd"

        non-ascii:
        prefix "éééé\n中中中中\n中" (from byte 17)
        suffix "中\néééé\n"
        line "中" | "中"

        long-line-prefix:
        prefix "89abcdefghij" (from byte 13)
        suffix "xy\nbbbb\n"
        line "89abcdefghij" | "xy"

        long-line-suffix:
        prefix "aaaa\nxy" (from byte 0)
        suffix "01234567"
        line "xy" | "01234567"

        start:
        prefix "" (from byte 0)
        suffix "aaaa\n"
        line "" | "aaaa"

        end:
        prefix "aaaa\nbbbb\n" (from byte 0)
        suffix ""
        line "" | ""

        end-no-newline:
        prefix "aaaa\nbb" (from byte 0)
        suffix ""
        line "bb" | ""

        empty:
        prefix "" (from byte 0)
        suffix ""
        line "" | ""

    "#]]
    .assert_eq(&out);
}

#[test]
fn a_cursor_inside_a_char_moves_to_its_start() {
    let snap = snapshot("plaintext", "aé\nb");
    let ctx = context::doc_context(&snap, 2, &Budget::default());
    assert_eq!((ctx.cursor, ctx.prefix.as_str(), ctx.suffix.as_str()), (1, "a", "é\nb"));
}

#[test]
fn default_budget_on_a_large_document() {
    let text: String = (0..20_000).map(|i| format!("let value_{i} = compute({i});\n")).collect();
    let snap = snapshot("rust", &text);
    let cursor = text.find("let value_10000 ").expect("line exists");
    let b = Budget::default();
    let ctx = context::doc_context(&snap, cursor, &b);
    let (p, s) = (ctx.prefix.chars().count(), ctx.suffix.chars().count());
    assert!(p <= b.prefix_chars() && p + 30 > b.prefix_chars(), "{p}");
    assert!(s <= b.suffix_chars() && s + 30 > b.suffix_chars(), "{s}");
    assert!(ctx.prefix.starts_with("let value_") && ctx.suffix.ends_with('\n'));
    assert_eq!((b.prefix_chars(), b.suffix_chars(), b.total_chars()), (4300, 716, 6451));
    assert_eq!(SnippetOptions::default().max_chars, 6451 - 4300 - 716);
    let opts = SnippetOptions::for_context(&b, &ctx);
    assert_eq!(opts.max_chars, 6451 - p - s);
}

const TARGET: &str = r#"
use crate::cache::LruCache;

pub fn lookup_user(cache: &mut LruCache<UserId, User>, id: UserId) -> Option<User> {
    if let Some(user) = cache.get(&id) {
        return Some(user.clone());
    }
    $0
"#;

fn doc(path: &str, text: &str) -> OtherDoc {
    OtherDoc { path: path.to_owned(), text: Rope::from_str(text) }
}

fn others() -> Vec<OtherDoc> {
    vec![
        doc(
            "src/render.rs",
            "pub fn draw(frame: &mut Frame, area: Rect) {\n    let block = Block::bordered();\n    frame.render_widget(block, area);\n}\n",
        ),
        doc(
            "src/cache.rs",
            "/// A least-recently-used cache.\n\
             pub struct LruCache<K, V> {\n    map: HashMap<K, V>,\n    order: VecDeque<K>,\n}\n\n\
             impl<K: Hash + Eq + Clone, V> LruCache<K, V> {\n\
             \x20   pub fn get(&mut self, key: &K) -> Option<&V> {\n\
             \x20       self.touch(key);\n        self.map.get(key)\n    }\n}\n",
        ),
        doc(
            "src/users.rs",
            "pub struct User {\n    pub name: String,\n}\n\npub struct UserId(u64);\n\n\
             pub fn load_user(db: &Db, id: UserId) -> Option<User> {\n    db.query_user(id)\n}\n",
        ),
    ]
}

fn target() -> DocContext {
    let cursor = TARGET.find(CURSOR).expect("marker");
    let snap = snapshot("rust", &TARGET.replacen(CURSOR, "", 1));
    context::doc_context(&snap, cursor, &Budget::default())
}

fn render_snippets(snippets: &[quill::provider::Snippet]) -> String {
    let mut out = String::new();
    for s in snippets {
        let first = s.text.lines().next().unwrap_or("");
        let _ = writeln!(out, "{} ({} lines): {first}", s.path, s.text.lines().count());
    }
    out
}

#[test]
fn the_most_similar_documents_win() {
    let opts = SnippetOptions { window_lines: 6, ..SnippetOptions::default() };
    let got = context::snippets(&target(), &others(), &opts);
    expect![[r#"
        src/cache.rs (6 lines): }
        src/users.rs (6 lines):     pub name: String,
    "#]]
    .assert_eq(&render_snippets(&got));
}

#[test]
fn windows_of_one_document_do_not_overlap_and_fit_the_budget() {
    // Two far-apart similar regions in one long document, with filler between.
    let mut text = String::new();
    for region in 0..2 {
        text.push_str(&format!("fn lookup_user_{region}(cache: &mut LruCache<UserId, User>, id: UserId) {{\n"));
        text.push_str("    cache.get(&id).cloned()\n}\n");
        for i in 0..40 {
            text.push_str(&format!("const FILLER_{region}_{i}: u32 = {i};\n"));
        }
    }
    let docs = [doc("src/long.rs", &text)];
    let opts = SnippetOptions { window_lines: 5, max_snippets: 5, ..SnippetOptions::default() };
    let got = context::snippets(&target(), &docs, &opts);
    // Equal scores go to the earlier window: the second starts two lines before `lookup_user_1`.
    expect![[r#"
        src/long.rs (5 lines): fn lookup_user_0(cache: &mut LruCache<UserId, User>, id: UserId) {
        src/long.rs (5 lines): const FILLER_0_38: u32 = 38;
    "#]]
    .assert_eq(&render_snippets(&got));
    assert!(got[1].text.contains("fn lookup_user_1"));
    let tight = SnippetOptions { max_chars: 120, ..opts };
    let got = context::snippets(&target(), &docs, &tight);
    assert!(got.iter().map(|s| s.text.chars().count()).sum::<usize>() <= 120);
    expect![[r#"
        src/long.rs (3 lines): fn lookup_user_0(cache: &mut LruCache<UserId, User>, id: UserId) {
    "#]]
    .assert_eq(&render_snippets(&got));
}

#[test]
fn no_time_no_snippets() {
    let opts = SnippetOptions { time_budget: Duration::ZERO, ..SnippetOptions::default() };
    assert!(context::snippets(&target(), &others(), &opts).is_empty());
}

#[test]
fn non_ascii_and_crlf_windows_are_whole_lines() {
    let text = "// Größe des Caches ändern 😀\r\nfn größe_ändern(cache: &mut LruCache<UserId, User>) {\r\n    cache.größe();\r\n}\r\n";
    let got = context::snippets(&target(), &[doc("src/größe.rs", text)], &SnippetOptions::default());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, text.trim_end_matches("\r\n"));
    // A budget that cuts the window keeps whole lines only.
    let lines: Vec<&str> = text.split("\r\n").collect();
    let three = lines[..3].join("\r\n");
    let opts = SnippetOptions { max_chars: three.chars().count() + 1, ..SnippetOptions::default() };
    let got = context::snippets(&target(), &[doc("src/größe.rs", text)], &opts);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].text, three);
    // Fewer than three lines is not worth a snippet.
    let opts = SnippetOptions { max_chars: three.chars().count() - 1, ..SnippetOptions::default() };
    assert!(context::snippets(&target(), &[doc("src/größe.rs", text)], &opts).is_empty());
}

#[test]
fn nothing_in_common_gives_nothing() {
    let docs = [doc("a.txt", "alpha beta gamma\ndelta epsilon\n"), doc("empty.txt", "")];
    assert!(context::snippets(&target(), &docs, &SnippetOptions::default()).is_empty());
    let empty = DocContext {
        prefix: String::new(),
        suffix: String::new(),
        prefix_start: 0,
        line_prefix: String::new(),
        line_suffix: String::new(),
        cursor: 0,
    };
    assert!(context::snippets(&empty, &others(), &SnippetOptions::default()).is_empty());
}

/// Ten documents of 2,000 lines each: this must stay far below the time budget (the work is
/// linear in lines). No timing assertion: only that it completes and finds the planted window.
#[test]
fn many_large_documents() {
    let mut docs = Vec::new();
    for d in 0..10 {
        let mut text = String::new();
        for i in 0..2_000 {
            if d == 7 && i == 1_500 {
                text.push_str("fn lookup_user(cache: &mut LruCache<UserId, User>, id: UserId) -> Option<User> {\n");
            } else {
                text.push_str(&format!("let field_{d}_{i} = other_value_{i} + compute_{}(x);\n", i % 17));
            }
        }
        docs.push(doc(&format!("src/gen{d}.rs"), &text));
    }
    let opts = SnippetOptions { time_budget: Duration::from_secs(60), ..SnippetOptions::default() };
    let got = context::snippets(&target(), &docs, &opts);
    assert_eq!(got.first().map(|s| s.path.as_str()), Some("src/gen7.rs"));
    assert!(got[0].text.contains("fn lookup_user"));
}
