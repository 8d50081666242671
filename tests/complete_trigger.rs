//! `complete::trigger::decide` on `$0` fixtures in every language with a grammar and two without:
//! which cursors get no suggestion, a single line, or a whole block. Documents go through the
//! store, so the trees are the ones the server would have.

use expect_test::expect;
use quill::{
    complete::{Mode, trigger},
    document::DEFAULT_MAX_PARSE_BYTES,
    store::Store,
};

const CURSOR: &str = "$0";

/// (name, languageId, file extension, fixture). The name is `<lang>/<case>`.
const FIXTURES: &[(&str, &str, &str, &str)] = &[
    // Rust
    ("rust/fn-empty-body", "rust", "rs", "fn main() {\n    $0\n}\n"),
    ("rust/fn-empty-body-same-line", "rust", "rs", "fn main() {$0}\n"),
    ("rust/fn-empty-body-unindented", "rust", "rs", "fn main() {\n$0\n}\n"),
    ("rust/fn-empty-body-eof", "rust", "rs", "fn main() {$0"),
    ("rust/unclosed-at-eof", "rust", "rs", "fn parse(args: &[String]) {\n    if args.is_empty() {\n        $0\n"),
    ("rust/unclosed-mid-file", "rust", "rs", "fn a() {\n    if x {\n        $0\n}\n\nfn main() {}\n"),
    ("rust/non-empty-body-below", "rust", "rs", "fn main() {\n    $0\n    run();\n}\n"),
    ("rust/statement-start", "rust", "rs", "fn main() {\n    let a = 1;\n    $0\n}\n"),
    ("rust/after-eq", "rust", "rs", "fn main() {\n    let a = $0\n}\n"),
    ("rust/else", "rust", "rs", "fn main() {\n    if a {\n        b();\n    } else {\n        $0\n    }\n}\n"),
    (
        "rust/nested",
        "rust",
        "rs",
        "impl A {\n    fn f(&self) {\n        for x in y {\n            $0\n        }\n    }\n}\n",
    ),
    ("rust/opener-then-comment", "rust", "rs", "fn main() { // entry\n    $0\n}\n"),
    ("rust/call-open", "rust", "rs", "fn main() {\n    foo($0\n}\n"),
    ("rust/call-closed", "rust", "rs", "fn main() {\n    foo($0)\n}\n"),
    ("rust/struct-literal", "rust", "rs", "fn main() {\n    let p = Point {$0};\n}\n"),
    ("rust/after-semicolon", "rust", "rs", "fn main() {\n    let a = 1;$0\n}\n"),
    ("rust/mid-word", "rust", "rs", "fn main() {\n    pri$0ntln!();\n}\n"),
    ("rust/same-indent-as-opener", "rust", "rs", "    fn f() {\n    $0\n    }\n"),
    ("rust/crlf", "rust", "rs", "fn main() {\r\n    $0\r\n}\r\n"),
    // Python
    ("python/def-empty-eof", "python", "py", "def load(self):\n    $0"),
    ("python/def-empty-next-def", "python", "py", "def load(self):\n    $0\n\ndef save(self):\n    pass\n"),
    ("python/def-same-line", "python", "py", "def load(self):$0"),
    ("python/def-body-below", "python", "py", "def get(self, key):\n    $0\n    return self.data.get(key)\n"),
    (
        "python/between-statements",
        "python",
        "py",
        "def main(argv):\n    args = parse(argv)\n    $0\n    return run(args)\n",
    ),
    ("python/after-last-statement", "python", "py", "def main(argv):\n    args = parse(argv)\n    $0\n"),
    (
        "python/if-nested",
        "python",
        "py",
        "class A:\n    def f(self):\n        if x:\n            $0\n        return 1\n",
    ),
    ("python/else", "python", "py", "if a:\n    b()\nelse:\n    $0\n"),
    ("python/after-eq", "python", "py", "x = $0\n"),
    ("python/def-same-line-space", "python", "py", "def load(self): $0\n"),
    ("python/call-open", "python", "py", "print($0\n"),
    ("python/dict-open", "python", "py", "d = {$0}\n"),
    ("python/mid-word", "python", "py", "def f():\n    ret$0urn\n"),
    ("python/crlf", "python", "py", "def load(self):\r\n    $0\r\n\r\ndef save(self):\r\n    pass\r\n"),
    ("python/lone-cr", "python", "py", "def load(self):\r    $0\r\rdef save(self):\r    pass\r"),
    // JavaScript
    ("javascript/fn-empty-body", "javascript", "js", "function f() {\n  $0\n}\n"),
    ("javascript/statement-start", "javascript", "js", "function f() {\n  const a = 1;\n  $0\n}\n"),
    ("javascript/mid-word", "javascript", "js", "cons$0ole.log(1);\n"),
    ("javascript/callback", "javascript", "js", "items.forEach((x) => {$0});\n"),
    ("javascript/object-literal", "javascript", "js", "const o = {$0};\n"),
    // TypeScript
    ("typescript/method-empty-body", "typescript", "ts", "class A {\n  area(): number {\n    $0\n  }\n}\n"),
    ("typescript/body-below", "typescript", "ts", "function f(): void {\n  $0\n  g();\n}\n"),
    ("typescript/else", "typescript", "ts", "if (a) {\n  b();\n} else {\n  $0\n}\n"),
    (
        "typescript/nested",
        "typescript",
        "ts",
        "function f() {\n  for (const x of xs) {\n    if (x) {\n      $0\n    }\n  }\n}\n",
    ),
    ("typescript/interface", "typescript", "ts", "interface Shape {\n  $0\n}\n"),
    ("typescript/call-open", "typescript", "ts", "foo($0\n"),
    ("typescript/call-closed", "typescript", "ts", "foo($0);\n"),
    ("typescript/unclosed-at-eof", "typescript", "ts", "function f() {\n  $0"),
    ("typescript/after-eq", "typescript", "ts", "const a = $0\n"),
    ("typescript/after-semicolon", "typescript", "ts", "const a = 1;$0\n"),
    ("typescript/mid-word", "typescript", "ts", "const a$0bc = 1;\n"),
    // TSX
    ("tsx/component-empty-body", "typescriptreact", "tsx", "export function Greeting() {\n  $0\n}\n"),
    ("tsx/statement-start", "typescriptreact", "tsx", "export function Greeting() {\n  const a = 1;\n  $0\n}\n"),
    ("tsx/mid-word", "typescriptreact", "tsx", "const App = () => <Gree$0ting />;\n"),
    // Go
    ("go/func-empty-body", "go", "go", "package main\n\nfunc main() {\n\t$0\n}\n"),
    ("go/for-nested", "go", "go", "package main\n\nfunc main() {\n\tfor {\n\t\t$0\n\t}\n}\n"),
    ("go/else", "go", "go", "package main\n\nfunc main() {\n\tif a {\n\t\tb()\n\t} else {\n\t\t$0\n\t}\n}\n"),
    ("go/body-below", "go", "go", "package main\n\nfunc main() {\n\t$0\n\trun()\n}\n"),
    ("go/switch", "go", "go", "package main\n\nfunc main() {\n\tswitch x {\n\t\t$0\n\t}\n}\n"),
    // gofmt puts `case` at the switch's indentation, but Cody's rule wants the cursor deeper.
    ("go/switch-case-indent", "go", "go", "package main\n\nfunc main() {\n\tswitch x {\n\t$0\n\t}\n}\n"),
    ("go/after-define", "go", "go", "package main\n\nfunc main() {\n\tx := $0\n}\n"),
    ("go/call-open", "go", "go", "package main\n\nfunc main() {\n\tfmt.Println($0\n}\n"),
    ("go/unclosed-at-eof", "go", "go", "package main\n\nfunc main() {\n\t$0"),
    ("go/mid-word", "go", "go", "package main\n\nfunc ma$0in() {}\n"),
    // Java
    ("java/method-empty-body", "java", "java", "class A {\n    void f() {\n        $0\n    }\n}\n"),
    ("java/statement-start", "java", "java", "class A {\n    void f() {\n        int a = 1;\n        $0\n    }\n}\n"),
    (
        "java/else",
        "java",
        "java",
        "class A {\n    void f() {\n        if (a) {\n            b();\n        } else {\n            $0\n        }\n    }\n}\n",
    ),
    ("java/body-below", "java", "java", "class A {\n    void f() {\n        $0\n        g();\n    }\n}\n"),
    ("java/call-open", "java", "java", "class A {\n    void f() {\n        g($0\n    }\n}\n"),
    ("java/unclosed-at-eof", "java", "java", "class A {\n    void f() {\n        $0"),
    ("java/after-eq", "java", "java", "class A {\n    int a = $0\n}\n"),
    ("java/mid-word", "java", "java", "class A {\n    vo$0id f() {}\n}\n"),
    // C, C++, C#
    ("c/fn-empty-body", "c", "c", "int main(void) {\n    $0\n}\n"),
    ("c/statement-start", "c", "c", "int main(void) {\n    int a = 1;\n    $0\n}\n"),
    ("c/mid-word", "c", "c", "int ma$0in(void);\n"),
    ("cpp/method-empty-body", "cpp", "cpp", "double Circle::area() const {\n    $0\n}\n"),
    ("cpp/after-eq", "cpp", "cpp", "int main() {\n    auto x = $0\n}\n"),
    ("cpp/mid-word", "cpp", "cpp", "std::stri$0ng s;\n"),
    ("csharp/method-empty-body", "csharp", "cs", "class A\n{\n    void F()\n    {\n        $0\n    }\n}\n"),
    (
        "csharp/statement-start",
        "csharp",
        "cs",
        "class A\n{\n    void F()\n    {\n        var a = 1;\n        $0\n    }\n}\n",
    ),
    ("csharp/mid-word", "csharp", "cs", "class A\n{\n    vo$0id F() {}\n}\n"),
    // Ruby
    ("ruby/def-empty", "ruby", "rb", "class Cart\n  def add(item)\n    $0\n  end\nend\n"),
    ("ruby/do-block-params", "ruby", "rb", "items.each do |item|\n  $0\nend\n"),
    ("ruby/if-empty", "ruby", "rb", "if ready\n  $0\nend\n"),
    ("ruby/def-body-below", "ruby", "rb", "def add(item)\n  $0\n  @items << item\nend\n"),
    ("ruby/statement-start", "ruby", "rb", "def add(item)\n  x = 1\n  $0\nend\n"),
    ("ruby/mid-word", "ruby", "rb", "def a$0dd(item)\nend\n"),
    // PHP
    (
        "php/method-empty-body",
        "php",
        "php",
        "<?php\nclass A\n{\n    public function show()\n    {\n        $0\n    }\n}\n",
    ),
    ("php/after-eq", "php", "php", "<?php\nfunction f() {\n    $x = $0\n}\n"),
    ("php/mid-word", "php", "php", "<?php\nfunction f() {\n    ech$0o 1;\n}\n"),
    // Bash
    ("bash/for-do", "shellscript", "sh", "for host in \"$@\"; do\n  $0\ndone\n"),
    ("bash/function-body", "shellscript", "sh", "deploy() {\n  $0\n}\n"),
    ("bash/if-then", "shellscript", "sh", "if [ -f x ]; then\n  $0\nfi\n"),
    ("bash/statement-start", "shellscript", "sh", "deploy() {\n  echo hi\n  $0\n}\n"),
    ("bash/mid-word", "shellscript", "sh", "ec$0ho hi\n"),
    // Kotlin
    ("kotlin/fun-empty-body", "kotlin", "kt", "class A {\n    fun f(): Int {\n        $0\n    }\n}\n"),
    ("kotlin/lambda-params", "kotlin", "kt", "fun f() {\n    xs.map { x ->\n        $0\n    }\n}\n"),
    ("kotlin/after-eq", "kotlin", "kt", "fun f() {\n    val a = $0\n}\n"),
    ("kotlin/mid-word", "kotlin", "kt", "fun f() {\n    prin$0tln()\n}\n"),
    // Lua
    ("lua/function-empty", "lua", "lua", "local function clamp(x, lo, hi)\n  $0\nend\n"),
    ("lua/function-empty-eof", "lua", "lua", "local function clamp(x, lo, hi)\n  $0"),
    ("lua/function-body-below", "lua", "lua", "local function clamp(x, lo, hi)\n  $0\n  return x\nend\n"),
    ("lua/if-then", "lua", "lua", "if name then\n  $0\nend\n"),
    ("lua/call-line", "lua", "lua", "print(x)\n$0\n"),
    ("lua/after-eq", "lua", "lua", "local a = $0\n"),
    ("lua/mid-word", "lua", "lua", "loc$0al a = 1\n"),
    // Swift
    ("swift/func-empty-body", "swift", "swift", "struct A {\n    func area() -> Double {\n        $0\n    }\n}\n"),
    ("swift/if-else", "swift", "swift", "func f() {\n    if a {\n        b()\n    } else {\n        $0\n    }\n}\n"),
    ("swift/statement-start", "swift", "swift", "func f() {\n    let a = 1\n    $0\n}\n"),
    ("swift/mid-word", "swift", "swift", "func f() {\n    pri$0nt(1)\n}\n"),
    // Scala
    ("scala/def-braces", "scala", "scala", "object A {\n  def f: Int = {\n    $0\n  }\n}\n"),
    ("scala/indented-eq", "scala", "scala", "object Main:\n  def main(args: Array[String]): Unit =\n    $0\n"),
    ("scala/indented-eq-eof", "scala", "scala", "object Main:\n  def main(args: Array[String]): Unit =\n    $0"),
    ("scala/indented-eq-inline", "scala", "scala", "object Main:\n  def main(args: Array[String]): Unit = $0\n"),
    (
        "scala/indented-body-below",
        "scala",
        "scala",
        "object Main:\n  def main(args: Array[String]): Unit =\n    $0\n    println(1)\n",
    ),
    ("scala/after-eq", "scala", "scala", "object A {\n  val a = $0\n}\n"),
    ("scala/mid-word", "scala", "scala", "object A {\n  val a$0bc = 1\n}\n"),
    // No grammar: braces in plain text, YAML by indentation.
    ("plaintext/brace", "plaintext", "txt", "config {\n  $0\n}\n"),
    ("plaintext/brace-body-below", "plaintext", "txt", "config {\n  $0\n  a = 1\n}\n"),
    ("plaintext/call-closed", "plaintext", "txt", "foo($0)\n"),
    ("plaintext/line", "plaintext", "txt", "hello $0\n"),
    ("plaintext/mid-word", "plaintext", "txt", "hel$0lo\n"),
    ("yaml/mapping", "yaml", "yaml", "services:\n  web:\n    $0\n"),
    ("yaml/mapping-below", "yaml", "yaml", "services:\n  web:\n    $0\n    image: nginx\n"),
    ("yaml/value", "yaml", "yaml", "services:\n  web: $0\n"),
    ("yaml/mid-word", "yaml", "yaml", "servi$0ces:\n"),
];

fn render(mode: Option<Mode>, skip: Option<trigger::Skip>) -> String {
    match (mode, skip) {
        (Some(Mode::MultiLine), _) => "multi".to_owned(),
        (Some(Mode::SingleLine), _) => "single".to_owned(),
        (None, Some(skip)) => format!("none ({skip:?})"),
        (None, None) => "none".to_owned(),
    }
}

fn decide(language_id: &str, ext: &str, fixture: &str) -> trigger::Decision {
    let cursor = fixture.find(CURSOR).expect("fixture has a $0 marker");
    let text = fixture.replacen(CURSOR, "", 1);
    let store = Store::new();
    let uri = format!("file:///fixture.{ext}");
    store.open(&uri, language_id, 1, &text, DEFAULT_MAX_PARSE_BYTES);
    let snap = store.snapshot(&uri).expect("document is open");
    trigger::decide(&snap, cursor)
}

#[test]
fn fixtures() {
    let mut out = String::new();
    for (name, language_id, ext, fixture) in FIXTURES {
        let d = decide(language_id, ext, fixture);
        let start = if d.line_start { ", line start" } else { "" };
        out.push_str(&format!("{name}: {}{start}\n", render(d.mode, d.skip)));
    }
    expect![[r#"
        rust/fn-empty-body: multi, line start
        rust/fn-empty-body-same-line: multi
        rust/fn-empty-body-unindented: multi, line start
        rust/fn-empty-body-eof: multi
        rust/unclosed-at-eof: multi, line start
        rust/unclosed-mid-file: multi, line start
        rust/non-empty-body-below: single, line start
        rust/statement-start: single, line start
        rust/after-eq: single
        rust/else: multi, line start
        rust/nested: multi, line start
        rust/opener-then-comment: multi, line start
        rust/call-open: single
        rust/call-closed: single
        rust/struct-literal: single
        rust/after-semicolon: none (AfterStatementEnd)
        rust/mid-word: none (MidWord)
        rust/same-indent-as-opener: single, line start
        rust/crlf: multi, line start
        python/def-empty-eof: multi, line start
        python/def-empty-next-def: multi, line start
        python/def-same-line: multi
        python/def-body-below: single, line start
        python/between-statements: single, line start
        python/after-last-statement: single, line start
        python/if-nested: multi, line start
        python/else: multi, line start
        python/after-eq: single
        python/def-same-line-space: single
        python/call-open: single
        python/dict-open: single
        python/mid-word: none (MidWord)
        python/crlf: multi, line start
        python/lone-cr: multi, line start
        javascript/fn-empty-body: multi, line start
        javascript/statement-start: single, line start
        javascript/mid-word: none (MidWord)
        javascript/callback: multi
        javascript/object-literal: single
        typescript/method-empty-body: multi, line start
        typescript/body-below: single, line start
        typescript/else: multi, line start
        typescript/nested: multi, line start
        typescript/interface: multi, line start
        typescript/call-open: single
        typescript/call-closed: single
        typescript/unclosed-at-eof: multi, line start
        typescript/after-eq: single
        typescript/after-semicolon: none (AfterStatementEnd)
        typescript/mid-word: none (MidWord)
        tsx/component-empty-body: multi, line start
        tsx/statement-start: single, line start
        tsx/mid-word: none (MidWord)
        go/func-empty-body: multi, line start
        go/for-nested: multi, line start
        go/else: multi, line start
        go/body-below: single, line start
        go/switch: multi, line start
        go/switch-case-indent: single, line start
        go/after-define: single
        go/call-open: single
        go/unclosed-at-eof: multi, line start
        go/mid-word: none (MidWord)
        java/method-empty-body: multi, line start
        java/statement-start: single, line start
        java/else: multi, line start
        java/body-below: single, line start
        java/call-open: single
        java/unclosed-at-eof: multi, line start
        java/after-eq: single
        java/mid-word: none (MidWord)
        c/fn-empty-body: multi, line start
        c/statement-start: single, line start
        c/mid-word: none (MidWord)
        cpp/method-empty-body: multi, line start
        cpp/after-eq: single
        cpp/mid-word: none (MidWord)
        csharp/method-empty-body: multi, line start
        csharp/statement-start: single, line start
        csharp/mid-word: none (MidWord)
        ruby/def-empty: multi, line start
        ruby/do-block-params: multi, line start
        ruby/if-empty: multi, line start
        ruby/def-body-below: single, line start
        ruby/statement-start: single, line start
        ruby/mid-word: none (MidWord)
        php/method-empty-body: multi, line start
        php/after-eq: single
        php/mid-word: none (MidWord)
        bash/for-do: multi, line start
        bash/function-body: multi, line start
        bash/if-then: multi, line start
        bash/statement-start: single, line start
        bash/mid-word: none (MidWord)
        kotlin/fun-empty-body: multi, line start
        kotlin/lambda-params: multi, line start
        kotlin/after-eq: single
        kotlin/mid-word: none (MidWord)
        lua/function-empty: multi, line start
        lua/function-empty-eof: multi, line start
        lua/function-body-below: single, line start
        lua/if-then: multi, line start
        lua/call-line: single, line start
        lua/after-eq: single
        lua/mid-word: none (MidWord)
        swift/func-empty-body: multi, line start
        swift/if-else: multi, line start
        swift/statement-start: single, line start
        swift/mid-word: none (MidWord)
        scala/def-braces: multi, line start
        scala/indented-eq: multi, line start
        scala/indented-eq-eof: multi, line start
        scala/indented-eq-inline: single
        scala/indented-body-below: single, line start
        scala/after-eq: single
        scala/mid-word: none (MidWord)
        plaintext/brace: multi, line start
        plaintext/brace-body-below: single, line start
        plaintext/call-closed: single
        plaintext/line: single
        plaintext/mid-word: none (MidWord)
        yaml/mapping: multi, line start
        yaml/mapping-below: single, line start
        yaml/value: single
        yaml/mid-word: none (MidWord)
    "#]]
    .assert_eq(&out);
}

/// Every language with a grammar has at least a multi-line, a single-line and a mid-word fixture.
#[test]
fn every_language_is_covered() {
    use quill::syntax::Language;
    let mut missing = Vec::new();
    for lang in Language::ALL {
        let prefix = format!("{}/", lang.name());
        let results: Vec<String> = FIXTURES
            .iter()
            .filter(|(name, ..)| name.starts_with(&prefix))
            .map(|(_, id, ext, f)| {
                let d = decide(id, ext, f);
                render(d.mode, d.skip)
            })
            .collect();
        for want in ["multi", "single", "none (MidWord)"] {
            if !results.iter().any(|r| r == want) {
                missing.push(format!("{}: no {want} fixture", lang.name()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn positions_out_of_range_and_inside_a_char_are_clamped() {
    let d = decide("rust", "rs", "fn main() {}\n$0");
    assert_eq!(d.mode, Some(Mode::SingleLine));
    let store = Store::new();
    store.open("file:///a.rs", "rust", 1, "// é\nfn f() {\n", DEFAULT_MAX_PARSE_BYTES);
    let snap = store.snapshot("file:///a.rs").expect("open");
    for byte in 0..snap.text.len_bytes() + 5 {
        let _ = trigger::decide(&snap, byte);
    }
    // Inside `é` (bytes 3..5): the cursor is at `é`, a word character.
    assert_eq!(trigger::decide(&snap, 4).skip, Some(trigger::Skip::MidWord));
}
