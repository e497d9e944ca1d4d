//! Renders the Helm chart in deploy/helm without `helm` (it cannot be installed on this
//! machine: not in Debian, no Go module proxy): Go's text/template via the `gtmpl` crate,
//! plus the Sprig/Helm functions the chart uses, with Helm's semantics (`include`, `indent`,
//! `nindent`, `quote`, `toYaml`, `sha256sum`). The chart uses nothing else; a function it
//! starts to use without support here fails the render, and so the test.
#![allow(dead_code)]

use gtmpl::{Context, FuncError, Template, Value};
use std::cell::RefCell;
use std::path::Path;

thread_local! {
    /// The chart's `_helpers.tpl`, whose `define`s `include` renders.
    static HELPERS: RefCell<String> = const { RefCell::new(String::new()) };
}

pub fn to_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_value).collect()),
        serde_json::Value::Object(o) => {
            Value::Map(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::NoValue | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => serde_json::json!(f),
            _ => serde_json::Value::Null,
        },
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Map(m) | Value::Object(m) => {
            // Go's yaml marshaller sorts keys.
            let sorted: std::collections::BTreeMap<_, _> =
                m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect();
            serde_json::Value::Object(sorted.into_iter().collect())
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Nil | Value::NoValue => String::new(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.as_f64().unwrap_or_default().to_string(),
        },
        Value::Bool(b) => b.to_string(),
        other => to_json(other).to_string(),
    }
}

fn arg<'a>(args: &'a [Value], i: usize, name: &str) -> Result<&'a Value, FuncError> {
    args.get(i)
        .ok_or_else(|| FuncError::ExactlyXArgs(name.into(), args.len().max(i + 1)))
}

fn int(v: &Value) -> Result<usize, FuncError> {
    match v {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        _ => None,
    }
    .ok_or(FuncError::UnableToConvertFromValue)
}

/// Helm: `indent N s` pads every line, `pad + replace(s, "\n", "\n" + pad)`.
fn indent(args: &[Value]) -> Result<Value, FuncError> {
    let pad = " ".repeat(int(arg(args, 0, "indent")?)?);
    let s = text(arg(args, 1, "indent")?);
    Ok(Value::String(format!(
        "{pad}{}",
        s.replace('\n', &format!("\n{pad}"))
    )))
}

fn nindent(args: &[Value]) -> Result<Value, FuncError> {
    Ok(Value::String(format!("\n{}", text(&indent(args)?))))
}

fn quote(args: &[Value]) -> Result<Value, FuncError> {
    let s = text(arg(args, 0, "quote")?);
    Ok(Value::String(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    )))
}

fn sha256sum(args: &[Value]) -> Result<Value, FuncError> {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(text(arg(args, 0, "sha256sum")?).as_bytes());
    Ok(Value::String(
        digest.iter().map(|b| format!("{b:02x}")).collect(),
    ))
}

/// Helm's `toYaml`: the YAML of the value, without the final newline.
fn to_yaml(args: &[Value]) -> Result<Value, FuncError> {
    let json = to_json(arg(args, 0, "toYaml")?);
    let yaml = serde_saphyr::to_string(&json).map_err(|e| FuncError::Generic(e.to_string()))?;
    Ok(Value::String(yaml.trim_end_matches('\n').to_string()))
}

/// Helm's `include NAME CONTEXT`: the `define`d template rendered against the context it is
/// given (not a root context rendered ahead), its output untrimmed.
fn include(args: &[Value]) -> Result<Value, FuncError> {
    let name = text(arg(args, 0, "include")?);
    let ctx = arg(args, 1, "include")?;
    let helpers = HELPERS.with(|h| h.borrow().clone());
    let render = |src: &str| {
        template(src)
            .and_then(|t| {
                t.render(&Context::from(ctx.clone()))
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| FuncError::Generic(format!("include {name}: {e}")))
    };
    // The helpers' own text outside their defines (newlines) comes first: cut it off.
    let outside = render(&helpers)?;
    let out = render(&format!("{helpers}{{{{ template \"{name}\" . }}}}"))?;
    Ok(Value::String(out[outside.len()..].to_string()))
}

/// Helm's values merge: maps merge key by key, at every depth; anything else replaces what
/// it overrides, and `null` removes the key.
fn merge(into: &mut serde_json::Value, over: &serde_json::Value) {
    match (into, over) {
        (serde_json::Value::Object(into), serde_json::Value::Object(over)) => {
            for (k, v) in over {
                if v.is_null() {
                    into.remove(k);
                } else if let Some(slot) = into.get_mut(k) {
                    merge(slot, v);
                } else {
                    into.insert(k.clone(), v.clone());
                }
            }
        }
        (into, over) => *into = over.clone(),
    }
}

fn template(text: &str) -> Result<Template, String> {
    let mut t = Template::default();
    t.add_func("indent", indent);
    t.add_func("nindent", nindent);
    t.add_func("quote", quote);
    t.add_func("sha256sum", sha256sum);
    t.add_func("toYaml", to_yaml);
    t.add_func("include", include);
    t.parse(text).map_err(|e| e.to_string())?;
    Ok(t)
}

/// Render every template of `chart` with its values.yaml, overridden by `overrides` (YAML
/// values merged as Helm merges `-f` files), as release `release`. Returns each non-empty
/// document, parsed.
pub fn render(chart: &Path, overrides: &str, release: &str) -> Vec<serde_json::Value> {
    let read = |p: &str| std::fs::read_to_string(chart.join(p)).unwrap();
    let meta: serde_json::Value = serde_saphyr::from_str(&read("Chart.yaml")).unwrap();
    let mut values: serde_json::Value = serde_saphyr::from_str(&read("values.yaml")).unwrap();
    if !overrides.trim().is_empty() {
        let extra: serde_json::Value = serde_saphyr::from_str(overrides).unwrap();
        merge(&mut values, &extra);
    }
    let root = serde_json::json!({
        "Values": values,
        "Release": { "Name": release, "Namespace": "default", "Service": "Helm" },
        "Chart": { "Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"] },
    });
    let ctx = Context::from(to_value(&root));
    let helpers = read("templates/_helpers.tpl");
    HELPERS.with(|h| *h.borrow_mut() = helpers.clone());
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(chart.join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let src = std::fs::read_to_string(&file).unwrap();
        let t = template(&format!("{helpers}{src}"))
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let out = t
            .render(&ctx)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for doc in out.split("\n---") {
            if doc.trim().is_empty() {
                continue;
            }
            let parsed: serde_json::Value = serde_saphyr::from_str(doc)
                .unwrap_or_else(|e| panic!("{} renders invalid YAML: {e}\n{doc}", file.display()));
            docs.push(parsed);
        }
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_renders_against_the_context_it_is_given() {
        HELPERS.with(|h| {
            *h.borrow_mut() =
                "{{/* x */}}\n{{- define \"who\" -}}\n{{ .name }}\n{{- end -}}\n".into()
        });
        let t = template(r#"{{ include "who" . }}/{{ include "who" .inner }}"#).unwrap();
        let ctx = to_value(&serde_json::json!({ "name": "root", "inner": { "name": "inner" } }));
        assert_eq!(t.render(&Context::from(ctx)).unwrap(), "root/inner");
    }

    #[test]
    fn values_merge_at_every_depth_and_null_removes() {
        let mut v = serde_json::json!({ "a": { "b": 1, "c": 2 }, "d": [1], "e": 1 });
        merge(
            &mut v,
            &serde_json::json!({ "a": { "c": 3 }, "d": [2], "e": null }),
        );
        assert_eq!(v, serde_json::json!({ "a": { "b": 1, "c": 3 }, "d": [2] }));
    }
}
