//! Chat history persistence and chat-turn context building, without the LSP: a store on a temp
//! dir (restart, corrupt files, bad ids, atomic writes, racing writers) and snapshots of the
//! request one turn sends (context blocks, budget cuts, bad mentions).

use std::{collections::HashMap, ffi::OsString, fmt::Write as _, fs, path::PathBuf, sync::Arc};

use expect_test::{Expect, expect};
use quill::{
    chat::{
        Budget, ChatMessage, ContextItem, ContextStatus, Docs, HistoryError, HistoryStore, Mention, Turn, build_turn,
        history::default_dir,
    },
    provider::Role as WireRole,
    syntax::Language,
};
use ropey::Rope;

// ---------------------------------------------------------------------------------------------
// History

fn store() -> (tempfile::TempDir, HistoryStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = HistoryStore::open(dir.path().join("chats")).expect("open store");
    (dir, store)
}

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn default_dir_prefers_xdg_then_home() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v))
    };
    assert_eq!(
        default_dir(env(&[("XDG_DATA_HOME", "/x/data"), ("HOME", "/home/u")])),
        Some(PathBuf::from("/x/data/quill/chats"))
    );
    assert_eq!(
        default_dir(env(&[("XDG_DATA_HOME", "relative"), ("HOME", "/home/u")])),
        Some(PathBuf::from("/home/u/.local/share/quill/chats"))
    );
    assert_eq!(default_dir(env(&[("XDG_DATA_HOME", "")])), None);
}

#[test]
fn chats_survive_a_restart() {
    let (tmp, store) = store();
    let chat = store.create(Some("claude".into())).expect("create");
    let mut question = ChatMessage::user("How do I parse args?\nSecond line.");
    question.context_used = vec![ContextItem {
        uri: "file:///w/main.rs".into(),
        range: Some((0, 4)),
        symbol: None,
        status: ContextStatus::Truncated { kept_lines: 3 },
    }];
    store.append_message(&chat.id, question.clone()).expect("append");
    let mut reply = ChatMessage::assistant("");
    store.append_message(&chat.id, reply.clone()).expect("append reply");
    reply.content = "Use clap.".into();
    reply.usage = Some((120, 4));
    store.replace_message(&chat.id, reply.clone()).expect("replace");
    let other = store.create(None).expect("create second");

    let before = store.get(&chat.id).expect("get");
    drop(store);
    let reopened = HistoryStore::open(tmp.path().join("chats")).expect("reopen");
    let after = reopened.get(&chat.id).expect("get after restart");
    assert_eq!(after, before);
    assert_eq!(after.title, "How do I parse args?");
    assert_eq!(after.messages, vec![question, reply]);
    let list = reopened.list();
    assert_eq!(list.len(), 2);
    assert!(list[0].updated_ms >= list[1].updated_ms, "newest first: {list:?}");
    let first = list.iter().find(|s| s.id == chat.id).expect("listed");
    assert_eq!((first.title.as_str(), first.message_count), ("How do I parse args?", 2));
    assert!(list.iter().any(|s| s.id == other.id && s.message_count == 0));

    let json = fs::read_to_string(tmp.path().join("chats").join(format!("{}.json", chat.id))).expect("read file");
    for key in ["\"version\": 1", "\"createdMs\"", "\"contextUsed\"", "\"keptLines\": 3", "\"role\": \"assistant\""] {
        assert!(json.contains(key), "{key} missing in {json}");
    }
}

#[test]
fn corrupt_truncated_and_newer_files_are_skipped() {
    let (tmp, store) = store();
    let good = store.create(None).expect("create");
    store.append_message(&good.id, ChatMessage::user("keep me")).expect("append");
    let dir = tmp.path().join("chats");
    let good_json = fs::read_to_string(dir.join(format!("{}.json", good.id))).expect("read");
    // A non-atomic writer that crashed halfway.
    fs::write(dir.join("truncated.json"), &good_json.replace(&good.id, "truncated")[..good_json.len() / 2])
        .expect("write");
    fs::write(dir.join("garbage.json"), b"\x00\xffnot json").expect("write");
    fs::write(dir.join("newer.json"), good_json.replace(&good.id, "newer").replace("\"version\": 1", "\"version\": 2"))
        .expect("write");
    fs::write(dir.join("misnamed.json"), &good_json).expect("write");
    fs::write(dir.join("notes.txt"), "ignored").expect("write");
    drop(store);

    let reopened = HistoryStore::open(dir).expect("reopen despite bad files");
    let ids: Vec<String> = reopened.list().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![good.id.clone()]);
    assert_eq!(reopened.get(&good.id).expect("get").messages[0].content, "keep me");
    assert!(matches!(reopened.get("truncated"), Err(HistoryError::UnknownChat(_))));
}

#[test]
fn bad_ids_are_refused() {
    let (tmp, store) = store();
    let chat = store.create(None).expect("create");
    for bad in ["", "..", "../x", "a/b", "a\\b", "x.json", "/etc/passwd", "é", &"a".repeat(65)] {
        assert!(matches!(store.get(bad), Err(HistoryError::BadId(_))), "get {bad:?}");
        assert!(matches!(store.delete(bad), Err(HistoryError::BadId(_))), "delete {bad:?}");
        assert!(
            matches!(store.append_message(bad, ChatMessage::user("x")), Err(HistoryError::BadId(_))),
            "append {bad:?}"
        );
        let mut m = ChatMessage::user("x");
        m.id = bad.to_owned();
        assert!(matches!(store.append_message(&chat.id, m), Err(HistoryError::BadId(_))), "message id {bad:?}");
    }
    assert!(matches!(store.get("unknown"), Err(HistoryError::UnknownChat(_))));
    let err = store.replace_message(&chat.id, ChatMessage::assistant("x"));
    assert!(matches!(err, Err(HistoryError::UnknownMessage { .. })), "{err:?}");
    assert_eq!(files(&tmp.path().join("chats")), vec![format!("{}.json", chat.id)]);
}

#[test]
fn delete_removes_the_file_for_good() {
    let (tmp, store) = store();
    let dir = tmp.path().join("chats");
    let gone = store.create(None).expect("create");
    let kept = store.create(None).expect("create");
    store.delete(&gone.id).expect("delete");
    assert_eq!(files(&dir), vec![format!("{}.json", kept.id)]);
    assert!(matches!(store.get(&gone.id), Err(HistoryError::UnknownChat(_))));
    assert!(matches!(store.delete(&gone.id), Err(HistoryError::UnknownChat(_))));
    drop(store);
    let reopened = HistoryStore::open(dir).expect("reopen");
    assert!(reopened.get(&gone.id).is_err());
    assert!(reopened.get(&kept.id).is_ok());
}

#[test]
fn writes_are_atomic_and_leave_no_temp_files() {
    let (tmp, store) = store();
    let dir = tmp.path().join("chats");
    let chat = store.create(None).expect("create");
    for i in 0..5 {
        store.append_message(&chat.id, ChatMessage::user(format!("m{i}"))).expect("append");
    }
    assert_eq!(files(&dir), vec![format!("{}.json", chat.id)]);

    // A leftover temp file from a crash is cleaned up on open.
    fs::write(dir.join(format!(".{}.json.tmp-1-0", chat.id)), "{\"vers").expect("write");
    drop(store);
    let store = HistoryStore::open(dir.clone()).expect("reopen");
    assert_eq!(files(&dir), vec![format!("{}.json", chat.id)]);

    // The rename fails (a directory sits where the file goes): an error, no temp file, and the
    // chat still usable in memory.
    let blocked = store.create(None).expect("create");
    let path = dir.join(format!("{}.json", blocked.id));
    fs::remove_file(&path).expect("rm");
    fs::create_dir(&path).expect("mkdir");
    fs::write(path.join("x"), "").expect("fill the dir so rename cannot replace it");
    let err = store.append_message(&blocked.id, ChatMessage::user("lost on disk"));
    assert!(matches!(err, Err(HistoryError::Io { .. })), "{err:?}");
    assert_eq!(store.get(&blocked.id).expect("in memory").messages.len(), 1);
    assert!(!files(&dir).iter().any(|n| n.contains(".tmp-")), "{:?}", files(&dir));

    // A read-only dir: the old file stays as it was. Root ignores permissions, so this part
    // only runs when the permission actually bites.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let before = fs::read(dir.join(format!("{}.json", chat.id))).expect("read");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o555)).expect("chmod");
        if fs::write(dir.join("probe"), "").is_err() {
            let err = store.append_message(&chat.id, ChatMessage::user("not saved"));
            assert!(matches!(err, Err(HistoryError::Io { .. })), "{err:?}");
            assert_eq!(fs::read(dir.join(format!("{}.json", chat.id))).expect("read"), before);
        }
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).expect("chmod back");
    }
}

#[test]
fn racing_writers_leave_the_newest_state_on_disk() {
    let (tmp, store) = store();
    let store = Arc::new(store);
    let chat = store.create(None).expect("create");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = Arc::clone(&store);
            let id = chat.id.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    store.append_message(&id, ChatMessage::user(format!("{t}-{i}"))).expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let in_memory = store.get(&chat.id).expect("get");
    assert_eq!(in_memory.messages.len(), 80);
    let reopened = HistoryStore::open(tmp.path().join("chats")).expect("reopen");
    assert_eq!(reopened.get(&chat.id).expect("get"), in_memory);
}

// ---------------------------------------------------------------------------------------------
// Context

#[derive(Default)]
struct FakeDocs {
    docs: HashMap<String, (String, Rope)>,
    /// Open, in search order.
    open: Vec<String>,
}

impl FakeDocs {
    fn with(mut self, uri: &str, language_id: &str, text: &str, open: bool) -> Self {
        self.docs.insert(uri.to_owned(), (language_id.to_owned(), Rope::from_str(text)));
        if open {
            self.open.push(uri.to_owned());
        }
        self
    }
}

impl Docs for FakeDocs {
    fn text(&self, uri: &str) -> Option<(String, Rope)> {
        self.docs.get(uri).cloned()
    }

    fn open_docs(&self) -> Vec<(String, Option<Language>, Rope)> {
        self.open
            .iter()
            .filter_map(|u| self.docs.get(u).map(|(id, r)| (u.clone(), Language::detect(id, u), r.clone())))
            .collect()
    }
}

const MAIN_RS: &str = "use std::env;

fn parse_args(args: &[String]) -> Option<u32> {
    args.get(1)?.parse().ok()
}

fn main() {
    let n = parse_args(&env::args().collect::<Vec<_>>());
    println!(\"{n:?}\");
}
";

const UTIL_PY: &str = "import os\n\n\nclass Config:\n    def __init__(self):\n        self.root = os.getcwd()\n";

fn docs() -> FakeDocs {
    FakeDocs::default()
        .with("file:///w/src/main.rs", "rust", MAIN_RS, true)
        .with("file:///w/util.py", "python", UTIL_PY, true)
        .with("file:///w/notes.txt", "plaintext", "parse_args is fast\n", true)
        .with("file:///w/My%20Doc.md", "", "# Title\n\nSome ```fenced``` text.\n", false)
        .with("file:///w/blob.bin", "", "PK\u{0}\u{3}", false)
}

fn history() -> Vec<ChatMessage> {
    vec![
        ChatMessage::user("What does main do?"),
        ChatMessage::assistant("It parses the first argument."),
        ChatMessage::user("This one failed"),
        {
            let mut m = ChatMessage::assistant("");
            m.error = Some("provider error".into());
            m
        },
        ChatMessage::user("And parse_args?"),
        ChatMessage::assistant("It returns None on bad input."),
    ]
}

fn render(turn: &Turn) -> String {
    let mut s = String::new();
    for m in &turn.request.messages {
        let role = match m.role {
            WireRole::System => "system",
            WireRole::User => "user",
            WireRole::Assistant => "assistant",
        };
        let _ = writeln!(s, "=== {role}");
        if m.role == WireRole::System {
            let _ = writeln!(s, "({} chars)", m.content.len());
        } else {
            let _ = writeln!(s, "{}", m.content);
        }
    }
    let _ = writeln!(s, "=== history dropped: {}", turn.history_dropped);
    s.push_str(&used(&turn.context_used));
    s
}

fn used(items: &[ContextItem]) -> String {
    let mut s = String::new();
    for item in items {
        let range = item.range.map(|(a, b)| format!(" {a}..={b}")).unwrap_or_default();
        let symbol = item.symbol.as_deref().map(|n| format!(" `{n}`")).unwrap_or_default();
        let _ = writeln!(s, "- {}{range}{symbol}: {:?}", item.uri, item.status);
    }
    s
}

fn check(history: &[ChatMessage], message: &str, mentions: &[Mention], budget: Budget, expect: Expect) {
    expect.assert_eq(&render(&build_turn(history, message, mentions, &docs(), &budget)));
}

#[test]
fn a_typical_turn() {
    check(
        &history(),
        "Add error handling to parse_args.",
        &[
            Mention::Range { uri: "file:///w/src/main.rs".into(), start_line: 6, end_line: 9 },
            Mention::Selection {
                uri: "file:///w/util.py".into(),
                range: (3, 4),
                text: "class Config:\n    def __init__(self):\n".into(),
            },
            Mention::Symbol { name: "parse_args".into() },
            Mention::File { uri: "file:///w/My%20Doc.md".into() },
        ],
        Budget::default(),
        expect![[r#"
            === system
            (319 chars)
            === user
            What does main do?
            === assistant
            It parses the first argument.
            === user
            And parse_args?
            === assistant
            It returns None on bad input.
            === user
            /w/src/main.rs (lines 7-10):
            ```rust
            fn main() {
                let n = parse_args(&env::args().collect::<Vec<_>>());
                println!("{n:?}");
            }
            ```

            /w/util.py (selection, lines 4-5):
            ```python
            class Config:
                def __init__(self):
            ```

            /w/src/main.rs (lines 3-5, `parse_args`):
            ```rust
            fn parse_args(args: &[String]) -> Option<u32> {
                args.get(1)?.parse().ok()
            }
            ```

            /w/My Doc.md:
            ````
            # Title

            Some ```fenced``` text.
            ````

            Add error handling to parse_args.
            === history dropped: 0
            - file:///w/src/main.rs 6..=9: Included
            - file:///w/util.py 3..=4: Included
            - file:///w/src/main.rs 2..=4 `parse_args`: Included
            - file:///w/My%20Doc.md: Included
        "#]],
    );
}

#[test]
fn bad_mentions_are_dropped_with_a_reason() {
    let turn = build_turn(
        &[],
        "hi",
        &[
            Mention::File { uri: "file:///w/missing.rs".into() },
            Mention::File { uri: "file:///w/blob.bin".into() },
            Mention::Range { uri: "file:///w/src/main.rs".into(), start_line: 40, end_line: 50 },
            Mention::Range { uri: "file:///w/src/main.rs".into(), start_line: 5, end_line: 2 },
            Mention::Range { uri: "file:///w/src/main.rs".into(), start_line: 9, end_line: 99 },
            Mention::Selection { uri: "file:///w/x.rs".into(), range: (0, 0), text: "a\0b".into() },
            Mention::Symbol { name: "Nowhere".into() },
            // Defined in Python; the plain-text file mentions the name but has no grammar.
            Mention::Symbol { name: "Config".into() },
        ],
        &docs(),
        &Budget::default(),
    );
    expect![[r#"
        - file:///w/missing.rs: Dropped { reason: "no such document" }
        - file:///w/blob.bin: Dropped { reason: "binary content (NUL bytes)" }
        - file:///w/src/main.rs 40..=50: Dropped { reason: "lines 41-51 outside the document (10 lines)" }
        - file:///w/src/main.rs 5..=2: Dropped { reason: "invalid range: start line 6 after end line 3" }
        - file:///w/src/main.rs 9..=9: Included
        - file:///w/x.rs 0..=0: Dropped { reason: "binary content (NUL bytes)" }
        -  `Nowhere`: Dropped { reason: "symbol `Nowhere` not found in the open documents" }
        - file:///w/util.py 3..=5 `Config`: Included
    "#]]
    .assert_eq(&used(&turn.context_used));
    assert_eq!(turn.request.messages.len(), 2);
}

#[test]
fn a_small_budget_truncates_context_and_drops_old_history() {
    // 120 tokens * 3.5 = 420 chars, 210 for context.
    check(
        &history(),
        "Why?",
        &[
            Mention::File { uri: "file:///w/util.py".into() },
            Mention::File { uri: "file:///w/src/main.rs".into() },
            Mention::File { uri: "file:///w/notes.txt".into() },
        ],
        Budget { context_tokens: 120, chars_per_token: 3.5, context_share: 0.5 },
        expect![[r#"
            === system
            (319 chars)
            === user
            /w/util.py:
            ```python
            import os


            class Config:
                def __init__(self):
                    self.root = os.getcwd()
            ```

            /w/src/main.rs:
            ```rust
            use std::env;

            ```
            (8 more lines cut to fit the context budget)

            Why?
            === history dropped: 2
            - file:///w/util.py: Included
            - file:///w/src/main.rs: Truncated { kept_lines: 2 }
            - file:///w/notes.txt: Dropped { reason: "does not fit the context budget (about 3 tokens left)" }
        "#]],
    );
}

#[test]
fn the_new_message_always_goes_in() {
    let long = "x".repeat(10_000);
    let turn = build_turn(
        &history(),
        &long,
        &[Mention::File { uri: "file:///w/util.py".into() }],
        &docs(),
        &Budget { context_tokens: 100, chars_per_token: 3.5, context_share: 0.5 },
    );
    let last = turn.request.messages.last().expect("a message");
    assert_eq!(last.role, WireRole::User);
    assert!(last.content.ends_with(&long));
    assert_eq!(turn.history_dropped, 2);
    assert_eq!(turn.request.messages.len(), 2, "system and the new message only");
}

#[test]
fn line_ends_of_every_kind_are_cut_cleanly() {
    for text in ["a\r\nb\r\nc\r\n", "a\rb\rc", "a\nb\nc\n"] {
        let docs = FakeDocs::default().with("file:///w/t.txt", "", text, false);
        let turn = build_turn(
            &[],
            "q",
            &[Mention::Range { uri: "file:///w/t.txt".into(), start_line: 1, end_line: 2 }],
            &docs,
            &Budget::default(),
        );
        let last = &turn.request.messages[1].content;
        assert_eq!(last, "/w/t.txt (lines 2-3):\n```\nb\nc\n```\n\nq", "{text:?}");
    }
}
