//! Tests of the command line other than `lsp`: `--version`, `check` and `config-schema`.

use std::process::Command;

fn quill(args: &[&str], workspace: &std::path::Path, env: &[(&str, &str)]) -> (i32, String) {
    let xdg = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_quill"));
    cmd.args(args).current_dir(workspace).env("XDG_CONFIG_HOME", xdg.path()).env_remove("QUILL_TEST_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run quill");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn version_prints_the_crate_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = quill(&["--version"], dir.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("quill {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_reports_providers_routing_and_key_presence_without_values() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("quill.toml"),
        "[providers.claude]\nkind = \"anthropic\"\nmodel = \"claude-sonnet-4-5\"\napi_key_env = \"QUILL_TEST_KEY\"\n\
         [providers.local]\nkind = \"ollama\"\n[completion]\nprovider = \"local\"\n[chat]\nprovider = \"claude\"\n",
    )
    .expect("write");
    let secret = "sk-ant-very-secret-value";
    let (code, out) = quill(&["check"], dir.path(), &[("QUILL_TEST_KEY", secret)]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(secret), "the key's value must never be printed: {out}");
    let out = out.replace(&dir.path().display().to_string(), "$WORKSPACE");
    expect_test::expect![[r#"
        config sources: $WORKSPACE/quill.toml
        providers:
          claude: kind=anthropic model=claude-sonnet-4-5 base_url=(default) key from $QUILL_TEST_KEY (set)
          local: kind=ollama model=(default) base_url=(default) no key configured
        routing:
          completion: local (ollama, model (default))
          chat: claude (anthropic, model claude-sonnet-4-5)
          edit: not routed
    "#]]
    .assert_eq(&out);

    let (_, out) = quill(&["check"], dir.path(), &[]);
    assert!(out.contains("key from $QUILL_TEST_KEY (NOT SET)"), "{out}");
}

#[test]
fn check_fails_on_invalid_config_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("quill.toml"), "[edit]\nprovider = \"nobody\"\n").expect("write");
    let (code, out) = quill(&["check"], dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error:") && out.contains("`edit.provider`") && out.contains("nobody"), "{out}");

    std::fs::write(dir.path().join("quill.toml"), "[documents\n").expect("write");
    let (code, out) = quill(&["check"], dir.path(), &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("quill.toml") && out.contains("line 1"), "{out}");
}

#[test]
fn config_schema_is_the_shipped_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (code, out) = quill(&["config-schema"], dir.path(), &[]);
    assert_eq!(code, 0);
    let printed: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let shipped: serde_json::Value =
        serde_json::from_str(include_str!("../docs/config.schema.json")).expect("shipped schema is JSON");
    assert_eq!(printed, shipped);
    assert!(printed["properties"]["providers"].is_object());
}
