//! Languages, their tree-sitter grammars, and the query files under `grammars/<lang>/<kind>.scm`.
//!
//! Queries are data: they are embedded at build time (see `build.rs`) and may be overridden by
//! files in the directory named by `QUILL_GRAMMARS_DIR`. Each (language, kind) pair is compiled
//! at most once, on first use. A missing file switches that feature off for that language; a file
//! that does not compile is logged with its location and also switches the feature off. Neither
//! is ever a panic.
//!
//! A query may begin with `; inherits: a, b`: the named languages' queries of the same kind are
//! prepended (as Helix does), so TSX reuses TypeScript, which reuses JavaScript.
//!
//! Capture names are shared across languages, so the code that reads them never matches on a
//! language. See `docs/ARCHITECTURE.md` for the list.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use tree_sitter::Query;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/queries.rs"));
}

/// The environment variable naming a directory of query overrides (same layout as `grammars/`).
pub const GRAMMARS_DIR_ENV: &str = "QUILL_GRAMMARS_DIR";

macro_rules! languages {
    ($( $variant:ident => $name:literal, $feature:literal, $grammar:expr,
        ids: [$($id:literal),*], exts: [$($ext:literal),*]; )*) => {
        /// Every language Quill knows. Whether its grammar is compiled in depends on cargo features.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Language { $($variant),* }

        impl Language {
            pub const ALL: &'static [Language] = &[$(Language::$variant),*];

            /// The directory name under `grammars/`, and the canonical name in logs.
            pub fn name(self) -> &'static str {
                match self { $(Language::$variant => $name),* }
            }

            /// The tree-sitter grammar, if its cargo feature is enabled.
            pub fn grammar(self) -> Option<tree_sitter::Language> {
                match self {
                    $(Language::$variant => {
                        #[cfg(feature = $feature)]
                        { Some($grammar.into()) }
                        #[cfg(not(feature = $feature))]
                        { None }
                    })*
                }
            }

            /// From an LSP `languageId` (case-insensitive).
            pub fn from_language_id(id: &str) -> Option<Language> {
                let id = id.to_ascii_lowercase();
                match id.as_str() {
                    $($name $(| $id)* => Some(Language::$variant),)*
                    _ => None,
                }
            }

            /// From a file name's extension (case-insensitive).
            pub fn from_extension(ext: &str) -> Option<Language> {
                let ext = ext.to_ascii_lowercase();
                match ext.as_str() {
                    $($($ext)|* => Some(Language::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

languages! {
    Rust => "rust", "lang-rust", tree_sitter_rust::LANGUAGE,
        ids: [], exts: ["rs"];
    Python => "python", "lang-python", tree_sitter_python::LANGUAGE,
        ids: ["py"], exts: ["py", "pyi", "pyw"];
    JavaScript => "javascript", "lang-javascript", tree_sitter_javascript::LANGUAGE,
        ids: ["javascriptreact", "js", "jsx"], exts: ["js", "mjs", "cjs", "jsx"];
    TypeScript => "typescript", "lang-typescript", tree_sitter_typescript::LANGUAGE_TYPESCRIPT,
        ids: ["ts"], exts: ["ts", "mts", "cts"];
    Tsx => "tsx", "lang-typescript", tree_sitter_typescript::LANGUAGE_TSX,
        ids: ["typescriptreact"], exts: ["tsx"];
    Go => "go", "lang-go", tree_sitter_go::LANGUAGE,
        ids: ["golang"], exts: ["go"];
    Java => "java", "lang-java", tree_sitter_java::LANGUAGE,
        ids: [], exts: ["java"];
    C => "c", "lang-c", tree_sitter_c::LANGUAGE,
        ids: [], exts: ["c", "h"];
    Cpp => "cpp", "lang-cpp", tree_sitter_cpp::LANGUAGE,
        ids: ["c++", "cuda-cpp"], exts: ["cc", "cpp", "cxx", "c++", "hpp", "hh", "hxx", "ipp"];
    CSharp => "csharp", "lang-csharp", tree_sitter_c_sharp::LANGUAGE,
        ids: ["c#", "cs"], exts: ["cs"];
    Ruby => "ruby", "lang-ruby", tree_sitter_ruby::LANGUAGE,
        ids: ["rb"], exts: ["rb", "rake", "gemspec"];
    Php => "php", "lang-php", tree_sitter_php::LANGUAGE_PHP,
        ids: [], exts: ["php", "phtml"];
    Bash => "bash", "lang-bash", tree_sitter_bash::LANGUAGE,
        ids: ["shellscript", "sh", "shell", "zsh"], exts: ["sh", "bash", "zsh"];
    Kotlin => "kotlin", "lang-kotlin", tree_sitter_kotlin_ng::LANGUAGE,
        ids: ["kt"], exts: ["kt", "kts"];
    Lua => "lua", "lang-lua", tree_sitter_lua::LANGUAGE,
        ids: [], exts: ["lua"];
    Swift => "swift", "lang-swift", tree_sitter_swift::LANGUAGE,
        ids: [], exts: ["swift"];
    Scala => "scala", "lang-scala", tree_sitter_scala::LANGUAGE,
        ids: [], exts: ["scala", "sc"];
}

impl Language {
    /// Resolve a document's language: the `languageId` first, then the URI's extension.
    pub fn detect(language_id: &str, uri: &str) -> Option<Language> {
        Language::from_language_id(language_id).or_else(|| {
            let path = uri.split(['?', '#']).next().unwrap_or(uri);
            let file = path.rsplit('/').next().unwrap_or(path);
            let (_, ext) = file.rsplit_once('.')?;
            Language::from_extension(ext)
        })
    }

    fn from_name(name: &str) -> Option<Language> {
        Language::ALL.iter().copied().find(|l| l.name() == name)
    }
}

/// The kinds of query file. Each is `grammars/<lang>/<file_stem>.scm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueryKind {
    /// Block bodies (`@block.body`) and the tokens that open them (`@block.opener`): multi-line
    /// triggers and truncation.
    Blocks,
    /// Function and class definitions (`@definition.function`, `@definition.class`, `@name`):
    /// context and symbol lookup.
    Definitions,
}

impl QueryKind {
    pub const ALL: &'static [QueryKind] = &[QueryKind::Blocks, QueryKind::Definitions];

    pub fn file_stem(self) -> &'static str {
        match self {
            QueryKind::Blocks => "blocks",
            QueryKind::Definitions => "definitions",
        }
    }
}

/// Why a query could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("no grammar for {0} in this build")]
    NoGrammar(&'static str),
    #[error("no {kind}.scm for {lang}")]
    Missing { lang: &'static str, kind: &'static str },
    #[error("{lang}/{kind}.scm: {message}")]
    Invalid { lang: &'static str, kind: &'static str, message: String },
}

/// Query sources, read once at start, and their compiled forms, filled on first use.
struct Registry {
    sources: HashMap<(Language, QueryKind), String>,
    compiled: HashMap<(Language, QueryKind), OnceLock<Result<Query, QueryError>>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let dir = std::env::var_os(GRAMMARS_DIR_ENV).map(PathBuf::from);
        Registry::load(dir.as_deref())
    })
}

impl Registry {
    fn load(override_dir: Option<&Path>) -> Registry {
        let mut sources = HashMap::new();
        for (lang, kind, src) in embedded::EMBEDDED_QUERIES {
            if let (Some(l), Some(k)) = (Language::from_name(lang), kind_from_stem(kind)) {
                sources.insert((l, k), (*src).to_owned());
            }
        }
        if let Some(dir) = override_dir {
            for &lang in Language::ALL {
                for &kind in QueryKind::ALL {
                    let path = dir.join(lang.name()).join(format!("{}.scm", kind.file_stem()));
                    match std::fs::read_to_string(&path) {
                        Ok(src) => {
                            tracing::info!(path = %path.display(), "query override loaded");
                            sources.insert((lang, kind), src);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => tracing::warn!(path = %path.display(), "query override unreadable: {e}"),
                    }
                }
            }
        }
        let compiled = Language::ALL
            .iter()
            .flat_map(|&l| QueryKind::ALL.iter().map(move |&k| ((l, k), OnceLock::new())))
            .collect();
        Registry { sources, compiled }
    }

    /// The full source of a query, with `; inherits:` lines expanded (cycles are cut).
    fn expanded_source(&self, lang: Language, kind: QueryKind, seen: &mut Vec<Language>) -> Option<String> {
        let src = self.sources.get(&(lang, kind))?;
        seen.push(lang);
        let mut out = String::new();
        if let Some(first) = src.lines().next()
            && let Some(list) = first.trim().strip_prefix("; inherits:")
        {
            for parent in list.split(',').map(str::trim).filter_map(Language::from_name) {
                if !seen.contains(&parent)
                    && let Some(parent_src) = self.expanded_source(parent, kind, seen)
                {
                    out.push_str(&parent_src);
                    out.push('\n');
                }
            }
        }
        out.push_str(src);
        Some(out)
    }

    fn compile(&self, lang: Language, kind: QueryKind) -> Result<Query, QueryError> {
        let grammar = lang.grammar().ok_or(QueryError::NoGrammar(lang.name()))?;
        let src = self
            .expanded_source(lang, kind, &mut Vec::new())
            .ok_or(QueryError::Missing { lang: lang.name(), kind: kind.file_stem() })?;
        Query::new(&grammar, &src).map_err(|e| QueryError::Invalid {
            lang: lang.name(),
            kind: kind.file_stem(),
            message: format!("line {}, column {}: {:?}: {}", e.row + 1, e.column + 1, e.kind, e.message),
        })
    }
}

fn kind_from_stem(stem: &str) -> Option<QueryKind> {
    QueryKind::ALL.iter().copied().find(|k| k.file_stem() == stem)
}

/// The `@block.body` and `@block.opener` nodes of one match of a `blocks` query (see the
/// capture contract in `tests/queries.rs`).
pub fn block_captures<'t>(
    query: &Query,
    m: &tree_sitter::QueryMatch<'_, 't>,
) -> (Option<tree_sitter::Node<'t>>, Option<tree_sitter::Node<'t>>) {
    let names = query.capture_names();
    let (mut body, mut opener) = (None, None);
    for c in m.captures() {
        match names.get(c.index as usize).copied() {
            Some("block.body") => body = Some(c.node),
            Some("block.opener") => opener = Some(c.node),
            _ => {}
        }
    }
    (body, opener)
}

/// The compiled query for a language and kind, compiling it on first use.
///
/// `None` switches the feature off for that language. The reason is logged once: at debug level
/// for a missing file or grammar (an expected gap), at error level for a file that does not compile.
pub fn query(lang: Language, kind: QueryKind) -> Option<&'static Query> {
    try_query(lang, kind).ok()
}

/// Like [`query`], with the reason when there is none. Used by the test that compiles every file.
pub fn try_query(lang: Language, kind: QueryKind) -> Result<&'static Query, &'static QueryError> {
    let reg = registry();
    let slot = reg.compiled.get(&(lang, kind)).ok_or(&QueryError::NoGrammar("unknown"))?;
    slot.get_or_init(|| {
        let result = reg.compile(lang, kind);
        match &result {
            Ok(_) => tracing::debug!(lang = lang.name(), kind = kind.file_stem(), "query compiled"),
            Err(e @ QueryError::Invalid { .. }) => tracing::error!("query disabled: {e}"),
            Err(e) => tracing::debug!("query unavailable: {e}"),
        }
        result
    })
    .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_detection() {
        assert_eq!(Language::detect("rust", "file:///a.txt"), Some(Language::Rust));
        assert_eq!(Language::detect("typescriptreact", ""), Some(Language::Tsx));
        assert_eq!(Language::detect("plaintext", "file:///x/y.PY"), Some(Language::Python));
        assert_eq!(Language::detect("", "file:///x/y.tsx?query#frag"), Some(Language::Tsx));
        assert_eq!(Language::detect("markdown", "file:///README"), None);
    }

    #[test]
    fn every_language_has_a_grammar_in_the_default_build() {
        for &lang in Language::ALL {
            assert!(lang.grammar().is_some(), "{} has no grammar", lang.name());
        }
    }

    #[test]
    fn inherits_and_bad_queries_are_handled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |lang: &str, body: &str| {
            std::fs::create_dir_all(dir.path().join(lang)).expect("mkdir");
            std::fs::write(dir.path().join(lang).join("blocks.scm"), body).expect("write");
        };
        write("javascript", "(statement_block) @block.body\n");
        write("tsx", "; inherits: javascript\n(jsx_element) @x\n");
        write("go", "(this_node_does_not_exist) @x\n");
        let reg = Registry::load(Some(dir.path()));
        let src = reg.expanded_source(Language::Tsx, QueryKind::Blocks, &mut Vec::new());
        assert!(src.as_deref().is_some_and(|s| s.contains("statement_block") && s.contains("jsx_element")));
        assert!(reg.compile(Language::Tsx, QueryKind::Blocks).is_ok());
        let err = reg.compile(Language::Go, QueryKind::Blocks).err();
        assert!(matches!(err, Some(QueryError::Invalid { lang: "go", .. })), "{err:?}");
    }
}
