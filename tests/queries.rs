//! The tree-sitter query files under `grammars/<lang>/`: every one compiles against its pinned
//! grammar and keeps the capture-name contract, and per-language fixtures pin what `blocks.scm`
//! and `definitions.scm` find around a `$0` cursor.
//!
//! The capture contract (shared by all languages, read by language-agnostic code):
//! - `blocks.scm`: `@block.body` is the body node of a block construct; `@block.opener` is the
//!   token that opens it (`{`, Python's `:`, Ruby's `do`, ...), in the same match, when one exists.
//! - `definitions.scm`: `@definition.function` or `@definition.class` is the whole definition
//!   node; `@name` is its name, in the same match.
//!
//! What autocomplete may rely on, and where it must fall back (the fixtures show each case):
//! - In brace languages the body includes its `{` and `}`, so "the innermost `@block.body`
//!   strictly containing the cursor" is the enclosing block, empty or not.
//! - Python `block`, Lua `block`, Ruby `body_statement` and Scala 3 `indented_block` span their
//!   statements only: a cursor on a blank line before the first or after the last statement is
//!   outside the body, and an empty Python body is a zero-width `block` right after its `:`.
//!   There the reliable signal is "the last `@block.opener` before the cursor is followed only by
//!   whitespace and a newline" (reported below as `after opener`): the cursor starts that
//!   opener's body. When neither signal fires, autocomplete falls back to indentation (the
//!   enclosing block is the nearest preceding line indented less than the cursor) and truncates
//!   by indentation too.
//! - Lua and Ruby constructs with no statements have no body node at all; their queries capture
//!   the whole construct (`method`, `if_statement`, ...), which runs to its `end`, in its place.
//!   Likewise constructs whose `{` is a direct child (Go `switch`, Swift `if`, Bash `if`, ...)
//!   are captured whole. So a `@block.body` may start at a keyword rather than at its opener,
//!   and nested bodies may share a byte range (innermost = deepest).
//! - A `{` not closed yet: mid-file the block borrows the next `}` and still holds the cursor; at
//!   the end of the file the construct degrades into an ERROR node and nothing matches, so
//!   autocomplete falls back to the text before the cursor and to indentation.

use std::fmt::Write as _;

use expect_test::{Expect, expect};
use quill::syntax::{self, Language, QueryError, QueryKind};
use tree_sitter::{CaptureQuantifier, Node, Parser, Query, QueryCursor, StreamingIterator, Tree};

const CURSOR: &str = "$0";

/// (language, kind) pairs allowed to have no query file. A gap must be a deliberate entry here;
/// today there is none.
const MISSING_ALLOWED: &[(Language, QueryKind)] = &[];

/// Capture names a query kind may use. Names starting with `_` are private to a pattern (for
/// predicates) and are allowed anywhere.
fn allowed_captures(kind: QueryKind) -> &'static [&'static str] {
    match kind {
        QueryKind::Blocks => &["block.body", "block.opener"],
        QueryKind::Definitions => &["definition.function", "definition.class", "name"],
    }
}

/// Compiles every query file of every language, then checks each pattern against the capture
/// contract: only contract names, and per pattern exactly one body (blocks) or exactly one
/// definition and one name (definitions). A typo in a capture name compiles fine but silently
/// breaks the feature, hence the check. All problems are listed at once.
#[test]
fn every_query_compiles_and_keeps_the_capture_contract() {
    let mut problems = Vec::new();
    for &lang in Language::ALL.iter().filter(|l| l.grammar().is_some()) {
        for &kind in QueryKind::ALL {
            match syntax::try_query(lang, kind) {
                Ok(query) => check_contract(lang, kind, query, &mut problems),
                Err(QueryError::Missing { .. }) if MISSING_ALLOWED.contains(&(lang, kind)) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    assert!(problems.is_empty(), "query problems:\n{}", problems.join("\n"));
}

fn check_contract(lang: Language, kind: QueryKind, query: &Query, problems: &mut Vec<String>) {
    let file = format!("{}/{}.scm", lang.name(), kind.file_stem());
    let names = query.capture_names();
    for name in names {
        if !name.starts_with('_') && !allowed_captures(kind).contains(name) {
            problems.push(format!("{file}: capture @{name} is not in the contract"));
        }
    }
    for pattern in 0..query.pattern_count() {
        let quantifiers = query.capture_quantifiers(pattern);
        let quantifiers_of = |wanted: &[&str]| {
            names
                .iter()
                .zip(quantifiers)
                .filter(|(name, q)| wanted.contains(name) && **q != CaptureQuantifier::Zero)
                .map(|(_, q)| *q)
                .collect::<Vec<_>>()
        };
        let (role, required): (&str, &[&[&str]]) = match kind {
            QueryKind::Blocks => ("a body", &[&["block.body"]]),
            QueryKind::Definitions => {
                ("a definition and a name", &[&["definition.function", "definition.class"], &["name"]])
            }
        };
        for wanted in required {
            if quantifiers_of(wanted) != [CaptureQuantifier::One] {
                let at = query.start_byte_for_pattern(pattern);
                problems.push(format!("{file}: pattern at byte {at} must capture exactly {role} once"));
            }
        }
    }
}

/// Parses `fixture` (with its `$0` removed) and describes what the queries find:
/// - `parse`: whether tree-sitter had to recover from errors;
/// - `body`: the innermost `@block.body` strictly containing the cursor, and the opener of that
///   match (if several matches share the body, the last opener before the cursor);
/// - `after opener`: the last `@block.opener` before the cursor when only whitespace, including
///   a newline, lies between them, and the kind of its body;
/// - one line per definition: its line, kind and name, in document order.
fn describe(lang: Language, fixture: &str) -> String {
    let cursor = fixture.find(CURSOR).expect("fixture has a $0 marker");
    let src = fixture.replacen(CURSOR, "", 1);
    let tree = parse(lang, &src);
    let mut out = String::new();
    let parse = if tree.root_node().has_error() { "has errors" } else { "ok" };
    let _ = writeln!(out, "parse: {parse}");

    let blocks = matches(lang, QueryKind::Blocks, &tree, &src);
    let pairs: Vec<_> = blocks.iter().filter_map(|m| body_and_opener(m)).collect();
    // Nested bodies can share a range (a Lua function body holding only an `if`), so ties go
    // to the deeper node.
    let innermost = pairs
        .iter()
        .filter(|(body, _)| body.start_byte() < cursor && cursor < body.end_byte())
        .min_by_key(|(body, _)| (body.end_byte() - body.start_byte(), std::cmp::Reverse(depth(*body))))
        .map(|(body, _)| *body);
    match innermost {
        Some(body) => {
            let opener = pairs
                .iter()
                .filter(|(b, _)| *b == body)
                .filter_map(|(_, opener)| opener.filter(|o| o.end_byte() <= cursor))
                .max_by_key(|o| o.end_byte());
            let opener = opener.map_or_else(|| "no opener".to_owned(), |o| token(o, &src));
            let _ = writeln!(out, "body: {}, {opener}", span(body));
        }
        None => out.push_str("body: none\n"),
    }
    let after = pairs
        .iter()
        .filter_map(|(body, opener)| opener.map(|o| (*body, o)))
        .filter(|(_, o)| {
            let gap = src.get(o.end_byte()..cursor).unwrap_or("x");
            gap.contains('\n') && gap.trim().is_empty()
        })
        .max_by_key(|(_, o)| o.end_byte());
    match after {
        Some((body, opener)) => {
            let _ = writeln!(out, "after opener: {} -> {}", token(opener, &src), span(body));
        }
        None => out.push_str("after opener: none\n"),
    }

    let mut definitions: Vec<_> = matches(lang, QueryKind::Definitions, &tree, &src)
        .iter()
        .filter_map(|m| {
            let (capture, def) = m.iter().find(|(n, _)| n.starts_with("definition."))?;
            let name = m.iter().find(|(n, _)| *n == "name").map_or("<no name>", |(_, node)| &src[node.byte_range()]);
            let kind = capture.trim_start_matches("definition.");
            Some((def.start_byte(), format!("{}: {kind} {name}", def.start_position().row + 1)))
        })
        .collect();
    definitions.sort();
    for (_, line) in definitions {
        let _ = writeln!(out, "{line}");
    }
    out
}

/// `kind, lines a-b` (1-based, as in the fixture source, whose first line is empty).
fn span(node: Node<'_>) -> String {
    let (start, end) = (node.start_position().row + 1, node.end_position().row + 1);
    format!("{}, lines {start}-{end}", node.kind())
}

/// `"text" on line n`.
fn token(node: Node<'_>, src: &str) -> String {
    format!("{:?} on line {}", &src[node.byte_range()], node.start_position().row + 1)
}

fn depth(node: Node<'_>) -> usize {
    std::iter::successors(node.parent(), Node::parent).count()
}

/// The `@block.body` node of a match and its `@block.opener`, if any.
fn body_and_opener<'t>(m: &[(&str, Node<'t>)]) -> Option<(Node<'t>, Option<Node<'t>>)> {
    let body = m.iter().find(|(n, _)| *n == "block.body").map(|(_, node)| *node)?;
    let opener = m.iter().find(|(n, _)| *n == "block.opener").map(|(_, node)| *node);
    Some((body, opener))
}

fn parse(lang: Language, src: &str) -> Tree {
    let mut parser = Parser::new();
    let grammar = lang.grammar().expect("grammar compiled in");
    parser.set_language(&grammar).expect("grammar ABI matches tree-sitter");
    parser.parse(src, None).expect("parse without timeout or cancellation")
}

/// Every match of the (language, kind) query over the tree, as (capture name, node) lists.
fn matches<'t>(lang: Language, kind: QueryKind, tree: &'t Tree, src: &str) -> Vec<Vec<(&'static str, Node<'t>)>> {
    let query = syntax::query(lang, kind).expect("query compiles (see the compile test)");
    let names = query.capture_names();
    let mut cursor = QueryCursor::new();
    let mut it = cursor.matches(query, tree.root_node(), src.as_bytes());
    let mut out = Vec::new();
    while let Some(m) = it.next() {
        out.push(m.captures().iter().map(|c| (names[c.index as usize], c.node)).collect());
    }
    out
}

/// Checks one fixture; a language whose grammar is not compiled in (a build without its cargo
/// feature) has nothing to check.
fn check(lang: Language, fixture: &str, expect: Expect) {
    if lang.grammar().is_some() {
        expect.assert_eq(&describe(lang, fixture));
    }
}

// One test per fixture, so a failure names its language and all failures show at once.

#[test]
fn rust() {
    check(
        Language::Rust,
        r#"
use std::fmt;

pub struct Point {
    x: i32,
    y: i32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        $0
    }
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 10-12, "{" on line 10
            after opener: "{" on line 10 -> block, lines 10-12
            4: class Point
            9: class Point
            10: function fmt
        "#]],
    );
}

/// Mid-typing, without auto-closed brackets: the `if` has no `}` of its own yet. The `if` block
/// takes the function's `}` and still contains the cursor (so truncation stops at that `}`), but
/// the function around it degrades into an ERROR node and drops out of the definitions.
#[test]
fn rust_unclosed_block() {
    check(
        Language::Rust,
        r#"
fn parse_args(args: &[String]) -> Option<Config> {
    if args.is_empty() {
        $0
}

fn main() {}
"#,
        expect![[r#"
            parse: has errors
            body: block, lines 3-5, "{" on line 3
            after opener: "{" on line 3 -> block, lines 3-5
            7: function main
        "#]],
    );
}

/// The same at the end of the file: no `}` anywhere after the cursor. Everything before `main`
/// becomes one ERROR node holding bare tokens, so no body and no opener match. Autocomplete
/// falls back to the text: an opener-like last token before the cursor (`{` here) and
/// indentation for truncation.
#[test]
fn rust_unclosed_block_at_end_of_file() {
    check(
        Language::Rust,
        r#"
fn parse_args(args: &[String]) -> Option<Config> {
    if args.is_empty() {
        $0
"#,
        expect![[r#"
            parse: has errors
            body: none
            after opener: none
        "#]],
    );
}

/// An editor's view right after typing `def load(self):` and Enter: the body has no statement yet.
/// It parses as a zero-width `block` right after the `:`, so no body contains the cursor and
/// only `after opener` fires.
#[test]
fn python_empty_body() {
    check(
        Language::Python,
        r#"
import os


class Config:
    def __init__(self, path):
        self.path = os.path.expanduser(path)

    def load(self):
        $0
"#,
        expect![[r#"
            parse: ok
            body: none
            after opener: ":" on line 9 -> block, lines 9-9
            5: class Config
            6: function __init__
            9: function load
        "#]],
    );
}

/// A blank line between two statements is inside the `block`, which spans them.
#[test]
fn python_between_statements() {
    check(
        Language::Python,
        r#"
def main(argv):
    args = parse(argv)
    $0
    return run(args)
"#,
        expect![[r#"
            parse: ok
            body: block, lines 3-5, ":" on line 2
            after opener: none
            2: function main
        "#]],
    );
}

/// A blank line before the first statement is outside the `block` (it starts at that statement):
/// the innermost body containing the cursor is the class's, and only `after opener` names the
/// right block.
#[test]
fn python_before_first_statement() {
    check(
        Language::Python,
        r#"
class Cache:
    def get(self, key):
        $0
        return self.data.get(key)
"#,
        expect![[r#"
            parse: ok
            body: block, lines 3-5, ":" on line 2
            after opener: ":" on line 3 -> block, lines 5-5
            2: class Cache
            3: function get
        "#]],
    );
}

#[test]
fn javascript() {
    check(
        Language::JavaScript,
        r#"
import { readFile } from "fs/promises";

export class Loader {
  constructor(path) {
    this.path = path;
  }

  async load() {
    $0
  }
}

const parse = (text) => JSON.parse(text);
"#,
        expect![[r#"
            parse: ok
            body: statement_block, lines 9-11, "{" on line 9
            after opener: "{" on line 9 -> statement_block, lines 9-11
            4: class Loader
            5: function constructor
            9: function load
            14: function parse
        "#]],
    );
}

#[test]
fn typescript() {
    check(
        Language::TypeScript,
        r#"
interface Shape {
  area(): number;
}

enum Unit { Cm, In }

export class Circle implements Shape {
  constructor(private r: number) {}

  area(): number {
    $0
  }
}

namespace Geometry {
  export const pi = 3.14;
}
"#,
        expect![[r#"
            parse: ok
            body: statement_block, lines 11-13, "{" on line 11
            after opener: "{" on line 11 -> statement_block, lines 11-13
            2: class Shape
            3: function area
            6: class Unit
            8: class Circle
            9: function constructor
            11: function area
            16: class Geometry
        "#]],
    );
}

#[test]
fn tsx() {
    check(
        Language::Tsx,
        r#"
type Props = { name: string };

export function Greeting({ name }: Props) {
  $0
}

const App = () => <Greeting name="world" />;
"#,
        expect![[r#"
            parse: ok
            body: statement_block, lines 4-6, "{" on line 4
            after opener: "{" on line 4 -> statement_block, lines 4-6
            4: function Greeting
            8: function App
        "#]],
    );
}

#[test]
fn go() {
    check(
        Language::Go,
        r#"
package main

type Server struct {
	addr string
}

type Handler interface {
	Serve() error
}

func (s *Server) Start() error {
	for {
		$0
	}
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 13-15, "{" on line 13
            after opener: "{" on line 13 -> block, lines 13-15
            4: class Server
            8: class Handler
            9: function Serve
            12: function Start
        "#]],
    );
}

#[test]
fn java() {
    check(
        Language::Java,
        r#"
package demo;

public class Counter {
    private int count;

    public Counter(int start) {
        count = start;
    }

    public void increment() {
        $0
    }
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 11-13, "{" on line 11
            after opener: "{" on line 11 -> block, lines 11-13
            4: class Counter
            7: function Counter
            11: function increment
        "#]],
    );
}

#[test]
fn c() {
    check(
        Language::C,
        r#"
#include <stdio.h>

struct point {
    int x, y;
};

typedef struct {
    int w, h;
} size;

static int *find(int *xs, int n, int x) {
    for (int i = 0; i < n; i++) {
        $0
    }
}
"#,
        expect![[r#"
            parse: ok
            body: compound_statement, lines 13-15, "{" on line 13
            after opener: "{" on line 13 -> compound_statement, lines 13-15
            4: class point
            8: class size
            12: function find
        "#]],
    );
}

#[test]
fn cpp() {
    check(
        Language::Cpp,
        r#"
#include <string>

namespace geo {

class Shape {
public:
    virtual ~Shape() {}
    virtual double area() const = 0;
};

double Circle::area() const {
    $0
}

}  // namespace geo
"#,
        expect![[r#"
            parse: ok
            body: compound_statement, lines 12-14, "{" on line 12
            after opener: "{" on line 12 -> compound_statement, lines 12-14
            4: class geo
            6: class Shape
            8: function ~Shape
            9: function area
            12: function area
        "#]],
    );
}

#[test]
fn csharp() {
    check(
        Language::CSharp,
        r#"
using System;

namespace Demo
{
    public interface IGreeter
    {
        string Greet(string name);
    }

    public class Greeter : IGreeter
    {
        public string Greet(string name)
        {
            $0
        }
    }
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 14-16, "{" on line 14
            after opener: "{" on line 14 -> block, lines 14-16
            4: class Demo
            6: class IGreeter
            8: function Greet
            11: class Greeter
            13: function Greet
        "#]],
    );
}

#[test]
fn ruby_do_block() {
    check(
        Language::Ruby,
        r#"
module Shop
  class Cart
    def total
      @items.sum do |item|
        $0
      end
    end
  end
end
"#,
        expect![[r#"
            parse: ok
            body: do_block, lines 5-7, "do" on line 5
            after opener: none
            2: class Shop
            3: class Cart
            4: function total
        "#]],
    );
}

/// A method with no statements has no body node: the `method` itself stands in, so the body runs
/// to its `end`. `def` has no opener token, so `after opener` has nothing to report.
#[test]
fn ruby_empty_method() {
    check(
        Language::Ruby,
        r#"
class Cart
  def initialize
    @items = []
  end

  def add(item)
    $0
  end
end
"#,
        expect![[r#"
            parse: ok
            body: method, lines 7-9, no opener
            after opener: none
            2: class Cart
            3: function initialize
            7: function add
        "#]],
    );
}

#[test]
fn php() {
    check(
        Language::Php,
        r#"
<?php

namespace App\Http;

class UserController
{
    public function show(int $id): string
    {
        $0
    }
}

function helper(): void {}
"#,
        expect![[r#"
            parse: ok
            body: compound_statement, lines 9-11, "{" on line 9
            after opener: "{" on line 9 -> compound_statement, lines 9-11
            4: class App\Http
            6: class UserController
            8: function show
            14: function helper
        "#]],
    );
}

#[test]
fn bash() {
    check(
        Language::Bash,
        r#"
#!/usr/bin/env bash
set -euo pipefail

deploy() {
  for host in "$@"; do
    $0
  done
}
"#,
        expect![[r#"
            parse: ok
            body: do_group, lines 6-8, "do" on line 6
            after opener: "do" on line 6 -> do_group, lines 6-8
            5: function deploy
        "#]],
    );
}

#[test]
fn kotlin() {
    check(
        Language::Kotlin,
        r#"
package demo

data class User(val name: String)

class UserService(private val repo: Repo) {
    fun find(id: Int): User? {
        $0
    }

    companion object {
        fun create() = UserService(Repo())
    }
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 7-9, "{" on line 7
            after opener: "{" on line 7 -> block, lines 7-9
            4: class User
            6: class UserService
            7: function find
            11: class companion
            12: function create
        "#]],
    );
}

/// An `if` with no statements has no `block`: the `if_statement` stands in (it runs to `end`).
#[test]
fn lua_empty_if() {
    check(
        Language::Lua,
        r#"
local M = {}

function M.greet(name)
  if name then
    $0
  end
end

return M
"#,
        expect![[r#"
            parse: ok
            body: if_statement, lines 5-7, "then" on line 5
            after opener: "then" on line 5 -> if_statement, lines 5-7
            4: function greet
        "#]],
    );
}

/// Before the first statement: the `block` starts at `return`, so only `after opener` fires.
#[test]
fn lua_function_body() {
    check(
        Language::Lua,
        r#"
local function clamp(x, lo, hi)
  $0
  return math.max(lo, math.min(x, hi))
end
"#,
        expect![[r#"
            parse: ok
            body: none
            after opener: ")" on line 2 -> block, lines 4-4
            2: function clamp
        "#]],
    );
}

#[test]
fn swift() {
    check(
        Language::Swift,
        r#"
import Foundation

protocol Shape {
    func area() -> Double
}

struct Circle: Shape {
    let radius: Double

    func area() -> Double {
        $0
    }
}
"#,
        expect![[r#"
            parse: ok
            body: function_body, lines 11-13, "{" on line 11
            after opener: "{" on line 11 -> function_body, lines 11-13
            4: class Shape
            5: function area
            8: class Circle
            11: function area
        "#]],
    );
}

#[test]
fn scala() {
    check(
        Language::Scala,
        r#"
package demo

trait Shape {
  def area: Double
}

case class Circle(r: Double) extends Shape {
  def area: Double = {
    $0
  }
}

object Main {
  def main(args: Array[String]): Unit = println(Circle(1).area)
}
"#,
        expect![[r#"
            parse: ok
            body: block, lines 9-11, "{" on line 9
            after opener: "{" on line 9 -> block, lines 9-11
            4: class Shape
            5: function area
            8: class Circle
            9: function area
            14: class Main
            15: function main
        "#]],
    );
}

/// Scala 3 indentation syntax: the `indented_block` after `=` spans its statements.
#[test]
fn scala_indented() {
    check(
        Language::Scala,
        r#"
object Main:
  def main(args: Array[String]): Unit =
    val name = args.head
    $0
    println(name)
"#,
        expect![[r#"
            parse: ok
            body: indented_block, lines 4-7, "=" on line 3
            after opener: none
            2: class Main
            3: function main
        "#]],
    );
}
