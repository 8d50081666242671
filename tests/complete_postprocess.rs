//! Post-processing of model answers: `$0` fixtures, a raw answer as a model streams it (often
//! running far past the block), and what is shown. Each case also streams the answer byte by byte
//! through `StreamCut` and checks that the early cut agrees with `finish`.
//!
//! Snapshots show the document after accepting the suggestion, with the suggestion between `⟦`
//! and `⟧` (a `\r` shows as `␍`); the bytes it overwrites after the cursor are listed first.

use expect_test::{Expect, expect};
use quill::{
    complete::{
        Mode,
        postprocess::{StreamCut, finish},
    },
    store::{Snapshot, Store},
};

const URI: &str = "file:///fixture";

fn snapshot(language_id: &str, fixture: &str) -> (Snapshot, usize) {
    let cursor = fixture.find("$0").expect("fixture has a $0 marker");
    let text = fixture.replacen("$0", "", 1);
    let store = Store::new();
    store.open(URI, language_id, 1, &text, 10 << 20);
    (store.snapshot(URI).expect("document is open"), cursor)
}

fn render(snap: &Snapshot, cursor: usize, mode: Mode, raw: &str) -> String {
    let doc = snap.text.to_string();
    match finish(snap, cursor, mode, raw) {
        Ok(s) => {
            let mut out = String::new();
            if s.replace_end > cursor {
                out.push_str(&format!("overwrites {:?}\n", &doc[cursor..s.replace_end]));
            }
            out.push_str(&format!("{}⟦{}⟧{}", &doc[..cursor], s.text, &doc[s.replace_end..]));
            // Carriage returns are shown, so that snapshots hold none.
            out.replace('\r', "␍")
        }
        Err(dropped) => format!("dropped: {dropped:?}\n"),
    }
}

/// Streams `raw` one character at a time; returns where the cut was decided and what it keeps.
fn stream(snap: &Snapshot, cursor: usize, mode: Mode, raw: &str) -> Option<(usize, usize)> {
    let mut cut = StreamCut::new(snap, cursor, mode);
    let ends = raw.char_indices().map(|(i, c)| i + c.len_utf8());
    let mut decided = None;
    for end in ends {
        let so_far = &raw[..end];
        let found = cut.feed(so_far);
        // Incremental feeding must agree with one look at the same text.
        assert_eq!(found, StreamCut::new(snap, cursor, mode).feed(so_far), "incremental at {end}");
        if let Some(keep) = found {
            decided = Some((end, keep));
            break;
        }
    }
    decided
}

fn check(language_id: &str, mode: Mode, fixture: &str, raw: &str, expect: Expect) {
    let (snap, cursor) = snapshot(language_id, fixture);
    let shown = render(&snap, cursor, mode, raw);
    let stream_line = match stream(&snap, cursor, mode, raw) {
        Some((decided, keep)) => {
            // The early cut keeps what `finish` would keep from the whole answer.
            let whole = finish(&snap, cursor, mode, raw);
            assert_eq!(finish(&snap, cursor, mode, &raw[..keep]), whole, "stream cut at {keep} disagrees");
            let kept_last = raw[..keep].lines().last().unwrap_or("");
            let decided_line = raw[..decided].trim_end_matches(['\n', '\r']).lines().last().unwrap_or("");
            format!("stream: keeps through {kept_last:?}, decided by {decided_line:?}\n")
        }
        None => "stream: no cut\n".to_owned(),
    };
    expect.assert_eq(&format!("{stream_line}{shown}"));
}

/// About 20 lines of unrelated code, as models write after finishing the block.
const RUST_TAIL: &str = "\nfn helper(x: u32) -> u32 {\n    x * 2\n}\n\nfn another() {\n    let v = vec![1, 2, 3];\n    for x in v {\n        println!(\"{x}\");\n    }\n}\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n\n    #[test]\n    fn works() {\n        assert_eq!(helper(2), 4);\n    }\n}\n";

#[test]
fn rust_fn_body_with_auto_closed_brace() {
    check(
        "rust",
        Mode::MultiLine,
        "fn parse(args: &[String]) -> Option<u32> {\n    $0\n}\n\nfn main() {}\n",
        &format!("let first = args.first()?;\n    first.parse().ok()\n}}\n{RUST_TAIL}"),
        expect![[r#"
            stream: keeps through "}", decided by "}"
            fn parse(args: &[String]) -> Option<u32> {
                ⟦let first = args.first()?;
                first.parse().ok()⟧
            }

            fn main() {}
        "#]],
    );
}

#[test]
fn rust_fn_body_unclosed_at_end_of_file() {
    check(
        "rust",
        Mode::MultiLine,
        "use std::env;\n\nfn parse(args: &[String]) -> Option<u32> {\n    $0",
        &format!("let first = args.first()?;\n    first.parse().ok()\n}}\n{RUST_TAIL}"),
        expect![[r#"
            stream: keeps through "}", decided by "}"
            use std::env;

            fn parse(args: &[String]) -> Option<u32> {
                ⟦let first = args.first()?;
                first.parse().ok()
            }⟧"#]],
    );
}

#[test]
fn rust_if_else_is_kept_whole() {
    check(
        "rust",
        Mode::MultiLine,
        "fn sign(x: i32) -> i32 {\n    if x < 0 {$0\n}\n",
        &format!("\n        -1\n    }} else {{\n        1\n    }}\n}}\n{RUST_TAIL}"),
        expect![[r#"
            stream: keeps through "    }", decided by "    }"
            fn sign(x: i32) -> i32 {
                if x < 0 {⟦
                    -1
                } else {
                    1
                }⟧
            }
        "#]],
    );
}

#[test]
fn rust_closure_keeps_the_rest_of_its_statement() {
    check(
        "rust",
        Mode::MultiLine,
        "fn doubled(xs: &[u32]) -> Vec<u32> {\n    xs.iter().map(|x| {$0\n}\n",
        &format!("\n        x * 2\n    }}).collect()\n}}\n{RUST_TAIL}"),
        expect![[r#"
            stream: keeps through "    }).collect()", decided by "    }).collect()"
            fn doubled(xs: &[u32]) -> Vec<u32> {
                xs.iter().map(|x| {⟦
                    x * 2
                }).collect()⟧
            }
        "#]],
    );
}

#[test]
fn rust_single_line_closing_paren_is_not_doubled() {
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    let total = add($0);\n}\n",
        "a, b);\n    println!(\"{total}\");\n}\n",
        expect![[r#"
            stream: keeps through "a, b);", decided by "a, b);"
            overwrites ");"
            fn main() {
                let total = add(⟦a, b);⟧
            }
        "#]],
    );
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    foo($0)\n}\n",
        "a, b)\n",
        expect![[r#"
        stream: keeps through "a, b)", decided by "a, b)"
        overwrites ")"
        fn main() {
            foo(⟦a, b)⟧
        }
    "#]],
    );
    // The answer's own parentheses do not count as the one after the cursor.
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    foo($0)\n}\n",
        "a, (b + c)\n",
        expect![[r#"
        stream: keeps through "a, (b + c)", decided by "a, (b + c)"
        fn main() {
            foo(⟦a, (b + c)⟧)
        }
    "#]],
    );
}

#[test]
fn python_body_is_cut_at_dedent() {
    check(
        "python",
        Mode::MultiLine,
        "class Config:\n    def __init__(self, path):\n        self.path = path\n\n    def load(self):\n        $0",
        "with open(self.path) as f:\n            return f.read()\n\n    def save(self, data):\n        with open(self.path, \"w\") as f:\n            f.write(data)\n\n\nif __name__ == \"__main__\":\n    Config(\"x\").load()\n",
        expect![[r#"
            stream: keeps through "            return f.read()", decided by "    def save(self, data):"
            class Config:
                def __init__(self, path):
                    self.path = path

                def load(self):
                    ⟦with open(self.path) as f:
                        return f.read()⟧"#]],
    );
}

#[test]
fn python_if_else_opened_by_the_answer_is_kept_whole() {
    check(
        "python",
        Mode::MultiLine,
        "def sign(x):\n    $0\n\n\nprint(sign(3))\n",
        "if x < 0:\n        return -1\n    else:\n        return 1\n\n\ndef other():\n    pass\n",
        expect![[r#"
            stream: keeps through "        return 1", decided by "def other():"
            def sign(x):
                ⟦if x < 0:
                    return -1
                else:
                    return 1⟧


            print(sign(3))
        "#]],
    );
}

#[test]
fn python_try_except_opened_by_the_answer_is_kept_whole() {
    check(
        "python",
        Mode::MultiLine,
        "import os\n\n\ndef read(path):\n    $0",
        "try:\n        with open(path) as f:\n            return f.read()\n    except OSError:\n        return None\n    finally:\n        print(\"done\")\n\n\ndef write(path, data):\n    pass\n",
        expect![[r#"
            stream: keeps through "        print(\"done\")", decided by "def write(path, data):"
            import os


            def read(path):
                ⟦try:
                    with open(path) as f:
                        return f.read()
                except OSError:
                    return None
                finally:
                    print("done")⟧"#]],
    );
}

#[test]
fn python_except_continues_the_try_the_cursor_is_in() {
    check(
        "python",
        Mode::MultiLine,
        "def read(path):\n    try:\n        $0",
        "f = open(path)\n    except OSError:\n        return None\n    return f.read()\n",
        expect![[r#"
            stream: keeps through "        return None", decided by "    return f.read()"
            def read(path):
                try:
                    ⟦f = open(path)
                except OSError:
                    return None⟧"#]],
    );
}

#[test]
fn typescript_method_body_with_auto_closed_brace() {
    check(
        "typescript",
        Mode::MultiLine,
        "export class Circle {\n  constructor(private r: number) {}\n\n  area(): number {\n    $0\n  }\n}\n",
        "return Math.PI * this.r ** 2;\n  }\n\n  perimeter(): number {\n    return 2 * Math.PI * this.r;\n  }\n}\n\nexport const unit = new Circle(1);\n",
        expect![[r#"
            stream: keeps through "  }", decided by "  }"
            export class Circle {
              constructor(private r: number) {}

              area(): number {
                ⟦return Math.PI * this.r ** 2;⟧
              }
            }
        "#]],
    );
}

#[test]
fn typescript_try_catch_is_kept_whole() {
    check(
        "typescript",
        Mode::MultiLine,
        "async function load(url: string) {\n  try {$0\n}\n",
        "\n    const res = await fetch(url);\n    return await res.json();\n  } catch (e) {\n    console.error(e);\n    return null;\n  }\n}\n\nexport default load;\n",
        expect![[r#"
            stream: keeps through "  }", decided by "  }"
            async function load(url: string) {
              try {⟦
                const res = await fetch(url);
                return await res.json();
              } catch (e) {
                console.error(e);
                return null;
              }⟧
            }
        "#]],
    );
}

#[test]
fn go_spaces_become_tabs() {
    check(
        "go",
        Mode::MultiLine,
        "package main\n\ntype Server struct {\n\taddr string\n}\n\nfunc (s *Server) Start() error {\n\t$0\n}\n",
        "ln, err := net.Listen(\"tcp\", s.addr)\n    if err != nil {\n        return err\n    }\n    return s.serve(ln)\n}\n\nfunc main() {\n    s := &Server{}\n    s.Start()\n}\n",
        expect![[r#"
            stream: keeps through "}", decided by "}"
            package main

            type Server struct {
            	addr string
            }

            func (s *Server) Start() error {
            	⟦ln, err := net.Listen("tcp", s.addr)
            	if err != nil {
            		return err
            	}
            	return s.serve(ln)⟧
            }
        "#]],
    );
}

#[test]
fn java_method_body_with_auto_closed_brace() {
    check(
        "java",
        Mode::MultiLine,
        "public class Counter {\n    private int count;\n\n    public void increment() {\n        $0\n    }\n}\n",
        "count++;\n        if (count > 100) {\n            count = 0;\n        }\n    }\n\n    public int get() {\n        return count;\n    }\n}\n",
        expect![[r#"
            stream: keeps through "    }", decided by "    }"
            public class Counter {
                private int count;

                public void increment() {
                    ⟦count++;
                    if (count > 100) {
                        count = 0;
                    }⟧
                }
            }
        "#]],
    );
}

#[test]
fn no_grammar_is_cut_by_indentation() {
    check(
        "elixir",
        Mode::MultiLine,
        "defmodule Math do\n  def sum(a, b) do\n    $0\n  end\nend\n",
        "a + b\n  end\n\n  def product(a, b) do\n    a * b\n  end\nend\n",
        expect![[r#"
            stream: keeps through "  end", decided by "  end"
            defmodule Math do
              def sum(a, b) do
                ⟦a + b⟧
              end
            end
        "#]],
    );
    check(
        "zig",
        Mode::MultiLine,
        "pub fn main() void {\n    $0",
        "const x = 1;\n    if (x > 0) {\n        run();\n    } else {\n        stop();\n    }\n}\n\npub fn run() void {}\n",
        expect![[r#"
            stream: keeps through "}", decided by "}"
            pub fn main() void {
                ⟦const x = 1;
                if (x > 0) {
                    run();
                } else {
                    stop();
                }
            }⟧"#]],
    );
}

#[test]
fn indentation_is_not_doubled_and_follows_the_document() {
    // The model wrote the cursor's indentation again, and used tabs in a spaces file.
    check(
        "python",
        Mode::MultiLine,
        "def f(x):\n    y = x\n    $0",
        "    if y:\n\t\treturn 1\n\treturn 2\n",
        expect![[r#"
            stream: no cut
            def f(x):
                y = x
                ⟦if y:
                    return 1
                return 2⟧"#]],
    );
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    $0\n}\n",
        "    let x = 1;\n",
        expect![[r#"
        stream: keeps through "    let x = 1;", decided by "    let x = 1;"
        fn main() {
            ⟦let x = 1;⟧
        }
    "#]],
    );
}

#[test]
fn single_line_keeps_the_first_line() {
    check(
        "python",
        Mode::SingleLine,
        "def f(x):\n    return $0",
        "x * 2\n\ndef g():\n",
        expect![[r#"
        stream: keeps through "x * 2", decided by "x * 2"
        def f(x):
            return ⟦x * 2⟧"#]],
    );
    check(
        "python",
        Mode::SingleLine,
        "def f(x):\n    return $0",
        "x * 2\r\n\r\ndef g():\r\n",
        expect![[r#"
        stream: keeps through "x * 2", decided by "x * 2"
        def f(x):
            return ⟦x * 2⟧"#]],
    );
    // A spare line break before the answer on a blank line is skipped.
    check(
        "python",
        Mode::SingleLine,
        "def f(x):\n    $0",
        "\n    return x * 2\n",
        expect![[r#"
        stream: keeps through "    return x * 2", decided by "    return x * 2"
        def f(x):
            ⟦return x * 2⟧"#]],
    );
}

#[test]
fn drop_rules() {
    check(
        "rust",
        Mode::MultiLine,
        "fn main() {\n    $0\n}\n",
        "",
        expect![[r#"
        stream: no cut
        dropped: Empty
    "#]],
    );
    // After text on the line, an answer that starts with a line break adds nothing there.
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    let x = $0\n}\n",
        "\n    let y = 2;\n",
        expect![[r#"
        stream: keeps through "", decided by ""
        dropped: Empty
    "#]],
    );
    check(
        "rust",
        Mode::MultiLine,
        "fn main() {\n    $0\n}\n",
        "  \n\t\n  ",
        expect![[r#"
        stream: no cut
        dropped: Whitespace
    "#]],
    );
    // The model echoes what already follows the cursor.
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    foo($0);\n}\n",
        ");\n",
        expect![[r#"
        stream: keeps through ");", decided by ");"
        dropped: SameAsSuffix
    "#]],
    );
    check(
        "rust",
        Mode::MultiLine,
        "fn main() {\n    $0\n}\n",
        "}\n\nfn other() {}\n",
        expect![[r#"
        stream: keeps through "}", decided by "fn other() {}"
        dropped: SameAsSuffix
    "#]],
    );
    // A clean document must stay clean.
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    $0\n}\n",
        "let x = (1 + ;\n",
        expect![[r#"
        stream: keeps through "let x = (1 + ;", decided by "let x = (1 + ;"
        dropped: BreaksParse
    "#]],
    );
}

#[test]
fn windows_line_ends() {
    check(
        "rust",
        Mode::MultiLine,
        "fn parse(args: &[String]) -> Option<u32> {\r\n    $0\r\n}\r\n",
        "let first = args.first()?;\r\n    first.parse().ok()\r\n}\r\n\r\nfn main() {}\r\n",
        expect![[r#"
            stream: keeps through "}", decided by "}"
            fn parse(args: &[String]) -> Option<u32> {␍
                ⟦let first = args.first()?;␍
                first.parse().ok()⟧␍
            }␍
        "#]],
    );
}

#[test]
fn python_answer_starting_with_a_line_break() {
    check(
        "python",
        Mode::MultiLine,
        "def f(x):$0\n\n\ndef g():\n    pass\n",
        "\n    y = x * 2\n    return y\n\n\ndef h():\n    pass\n",
        expect![[r#"
            stream: keeps through "    return y", decided by "def h():"
            def f(x):⟦
                y = x * 2
                return y⟧


            def g():
                pass
        "#]],
    );
}

/// A single line that opens a block is not a parse error: the editor closes it as the user goes
/// on (Cody ranks such lines; dropping them would hide `if …{` and `def …:` suggestions).
#[test]
fn a_single_line_that_opens_a_block_is_kept() {
    check(
        "rust",
        Mode::SingleLine,
        "fn main() {\n    let v = vec![1];\n    $0\n}\n",
        "for x in v {\n        println!(\"{x}\");\n",
        expect![[r#"
            stream: keeps through "for x in v {", decided by "for x in v {"
            fn main() {
                let v = vec![1];
                ⟦for x in v {⟧
            }
        "#]],
    );
    check(
        "python",
        Mode::SingleLine,
        "def main(items):\n    total = 0\n    $0\n    return total\n",
        "for item in items:\n        total += item\n",
        expect![[r#"
            stream: keeps through "for item in items:", decided by "for item in items:"
            def main(items):
                total = 0
                ⟦for item in items:⟧
                return total
        "#]],
    );
}

/// Review regressions: text after the cursor that is not ASCII, and partial overlaps.
#[test]
fn a_suggestion_before_a_multibyte_character_does_not_panic() {
    let (snap, cursor) = snapshot("rust", "fn main() {\n    let s = \"$0→\";\n}\n");
    let r = std::panic::catch_unwind(|| finish(&snap, cursor, Mode::SingleLine, "x"));
    assert!(r.is_ok(), "finish panicked");
}

#[test]
fn overlap_never_overwrites_part_of_a_word() {
    let (snap, cursor) = snapshot("rust", "fn main() {\n    foo($0, bar);\n}\n");
    let doc = snap.text.to_string();
    let s = finish(&snap, cursor, Mode::SingleLine, "a, b, c)").expect("shown");
    let after = format!("{}{}{}", &doc[..cursor], s.text, &doc[s.replace_end..]);
    assert!(!after.contains("c)ar"), "corrupted: {after:?}");
    assert_eq!(s.replace_end, cursor, "nothing overwritten");
}
