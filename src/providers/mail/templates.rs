//! The Liquid templates of account mail: the built-in ones (compiled in) and the custom ones in
//! `EMAIL_TEMPLATES_PATH`, which override them by file name as in Directus
//! (`api/src/services/mail/index.ts`: liquidjs with the custom folder searched first).
//!
//! The `liquid` crate has no `layout`/`block` tags (liquidjs extensions that Directus's
//! templates use), so a template's `{% layout "base" %}` is resolved here, before parsing: the
//! child's `{% block name %}` bodies replace the layout's blocks of the same name, and the
//! result is one Liquid source. `{% include %}`/`{% render %}` of other files in the folder
//! work through the crate's partials.
//!
//! SECURITY: Liquid does not escape output. Every string variable is HTML-escaped before it
//! reaches the template, since `projectName` and the other project values come from settings
//! that an administrator (or an attacker with settings access) writes; `escape` in a template
//! does not escape twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use liquid::model::{KStringCow, Object, ObjectView, State, Value, ValueView};
use liquid_core::model::DisplayCow;
use serde_json::Map;

use super::Template;

/// A custom template file larger than this is refused at start.
const MAX_TEMPLATE_BYTES: u64 = 1 << 20;
/// At most this many files of the custom folder are read as partials.
const MAX_PARTIALS: usize = 200;
/// `layout` chains deeper than this are refused (and cycles with them).
const MAX_LAYOUT_DEPTH: usize = 8;

const BUILT_IN: &[(&str, &str)] = &[
    ("base", include_str!("templates/base.liquid")),
    (
        "password-reset",
        include_str!("templates/password-reset.liquid"),
    ),
    (
        "user-invitation",
        include_str!("templates/user-invitation.liquid"),
    ),
    (
        "user-registration",
        include_str!("templates/user-registration.liquid"),
    ),
];

const ALL: [Template; 3] = [
    Template::PasswordReset,
    Template::UserInvitation,
    Template::UserRegistration,
];

/// A template that cannot be used; the text names the file.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// The three account templates, parsed once.
#[derive(Clone)]
pub struct Templates {
    parsed: Arc<HashMap<&'static str, liquid::Template>>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

/// One template's text and where it came from (for error messages).
struct Source {
    text: String,
    origin: String,
}

struct Loader {
    dir: Option<PathBuf>,
}

impl Loader {
    /// The custom file when it exists, else the built-in one.
    fn source(&self, name: &str) -> Result<Option<Source>, TemplateError> {
        if let Some(dir) = &self.dir {
            if !is_template_name(name) {
                return Err(TemplateError(format!(
                    "EMAIL_TEMPLATES_PATH: the template name {name:?} is not allowed (use letters, digits, `-` and `_`)"
                )));
            }
            let path = dir.join(format!("{name}.liquid"));
            if path.is_file() {
                return read_file(&path).map(|text| {
                    Some(Source {
                        text,
                        origin: path.display().to_string(),
                    })
                });
            }
        }
        Ok(BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Source {
                text: (*text).to_string(),
                origin: format!("the built-in {n}.liquid"),
            }))
    }

    /// `name` with its layout chain resolved; block tags are kept so a child can override.
    fn expand(
        &self,
        name: &str,
        depth: usize,
        origins: &mut Vec<String>,
    ) -> Result<String, TemplateError> {
        if depth > MAX_LAYOUT_DEPTH {
            return Err(TemplateError(format!(
                "{}: layouts nest deeper than {MAX_LAYOUT_DEPTH} (a layout that uses itself?)",
                origins.join(" -> ")
            )));
        }
        let Some(src) = self.source(name)? else {
            return Err(TemplateError(format!(
                "{}: the layout {name:?} does not exist (looked for {name}.liquid in EMAIL_TEMPLATES_PATH and the built-in templates)",
                origins.join(" -> ")
            )));
        };
        origins.push(src.origin.clone());
        let Some(layout) = layout_re().captures(&src.text) else {
            check_blocks(&src.text, &src.origin)?;
            return Ok(src.text);
        };
        let whole = layout.get(0).map_or(0..0, |m| m.range());
        let parent = layout
            .get(1)
            .or_else(|| layout.get(2))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let child = format!("{}{}", &src.text[..whole.start], &src.text[whole.end..]);
        check_blocks(&child, &src.origin)?;
        // The child's blocks by name; what is outside any block is the anonymous block, as
        // liquidjs does.
        let mut blocks: HashMap<String, String> = HashMap::new();
        let outside = block_re()
            .replace_all(&child, |c: &regex::Captures| {
                blocks.insert(c[1].to_string(), c[2].to_string());
                String::new()
            })
            .into_owned();
        blocks.entry(String::new()).or_insert(outside);
        let parent_text = self.expand(&parent, depth + 1, origins)?;
        Ok(block_re()
            .replace_all(&parent_text, |c: &regex::Captures| {
                let body = match blocks.get(&c[1]) {
                    Some(own) => super_re()
                        .replace_all(own, regex::NoExpand(&c[2]))
                        .into_owned(),
                    None => c[2].to_string(),
                };
                format!("{{% block {} %}}{body}{{% endblock %}}", &c[1])
            })
            .into_owned())
    }
}

/// The template name as a file name: no path separators, no `..` (Directus checks the path
/// stays inside the folder).
fn is_template_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.contains("..")
}

fn read_file(path: &Path) -> Result<String, TemplateError> {
    let too_big = std::fs::metadata(path)
        .map(|m| m.len() > MAX_TEMPLATE_BYTES)
        .unwrap_or(false);
    if too_big {
        return Err(TemplateError(format!(
            "{}: the template is larger than 1 MiB",
            path.display()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| {
        TemplateError(format!(
            "{}: cannot read the template ({e})",
            path.display()
        ))
    })
}

fn layout_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r#"\{%-?\s*layout\s+(?:"([^"]*)"|'([^']*)')\s*-?%\}"#)
            .expect("BUG: the layout pattern is valid")
    })
}

fn block_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(
            r"(?s)\{%-?\s*block\s*([A-Za-z0-9_-]*)\s*-?%\}(.*?)\{%-?\s*endblock\s*[A-Za-z0-9_-]*\s*-?%\}",
        )
        .expect("BUG: the block pattern is valid")
    })
}

fn super_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"\{\{-?\s*block\.super\s*-?\}\}")
            .expect("BUG: the block.super pattern is valid")
    })
}

fn tag_re(tag: &str) -> regex::Regex {
    regex::Regex::new(&format!(r"\{{%-?\s*{tag}\b")).expect("BUG: the tag pattern is valid")
}

/// Blocks inside blocks are not resolved here: refuse them rather than render them wrongly.
fn check_blocks(text: &str, origin: &str) -> Result<(), TemplateError> {
    let opens = tag_re("block").find_iter(text).count();
    let closes = tag_re("endblock").find_iter(text).count();
    let pairs = block_re().find_iter(text).count();
    if opens != closes
        || opens != pairs
        || block_re()
            .find_iter(text)
            .any(|m| tag_re("block").find_iter(&m.as_str()[2..]).count() > 0)
    {
        return Err(TemplateError(format!(
            "{origin}: unbalanced or nested {{% block %}} tags (gatehouse resolves one level of blocks per template)"
        )));
    }
    Ok(())
}

/// Block tags left after the layout is resolved render their bodies.
fn strip_blocks(text: &str) -> String {
    block_re().replace_all(text, "$2").into_owned()
}

impl Templates {
    /// The built-in templates only.
    pub fn built_in() -> Self {
        Self::load(None).expect("BUG: the built-in templates parse")
    }

    /// Parses the three templates, custom files in `dir` first. A template that does not
    /// parse, or does not render with sample values, is an error naming its file.
    pub fn load(dir: Option<&Path>) -> Result<Self, TemplateError> {
        let dir = dir.filter(|d| d.is_dir()).map(Path::to_path_buf);
        let loader = Loader { dir: dir.clone() };
        let parser = parser(dir.as_deref())?;
        let mut parsed = HashMap::new();
        for t in ALL {
            let mut origins = Vec::new();
            let text = loader.expand(t.name(), 0, &mut origins)?;
            let text = strip_blocks(&text);
            let files = origins.join(" with the layout ");
            let template = parser
                .parse(&text)
                .map_err(|e| TemplateError(format!("{files}: not a valid Liquid template: {e}")))?;
            let sample = sample_vars();
            template.render(&Lenient(&sample)).map_err(|e| {
                TemplateError(format!("{files}: the template does not render: {e}"))
            })?;
            parsed.insert(t.name(), template);
        }
        Ok(Self {
            parsed: Arc::new(parsed),
        })
    }

    /// Renders `template` with `vars` (each string HTML-escaped first), trimming each line as
    /// Directus does.
    pub fn render(
        &self,
        template: Template,
        vars: &Map<String, serde_json::Value>,
    ) -> Result<String, String> {
        let parsed = self
            .parsed
            .get(template.name())
            .ok_or_else(|| format!("no template {}", template.name()))?;
        let globals = escaped(vars);
        let html = parsed
            .render(&Lenient(&globals))
            .map_err(|e| format!("the template {} does not render: {e}", template.name()))?;
        Ok(html.lines().map(str::trim).collect::<Vec<_>>().join("\n"))
    }
}

fn sample_vars() -> Object {
    let mut vars = Map::new();
    for (k, v) in [
        (
            "url",
            "https://example.com/admin/reset-password?token=sample",
        ),
        ("email", "someone@example.com"),
        ("projectName", "Directus"),
        ("projectColor", "#171717"),
        (
            "projectLogo",
            "https://example.com/admin/img/directus-white.png",
        ),
        ("projectUrl", ""),
    ] {
        vars.insert(k.into(), v.into());
    }
    escaped(&vars)
}

/// Every custom file in `dir` becomes a partial for `include`/`render` (by its name with and
/// without `.liquid`), with the built-in ones after them.
fn parser(dir: Option<&Path>) -> Result<liquid::Parser, TemplateError> {
    let mut source = liquid::partials::InMemorySource::new();
    for (name, text) in BUILT_IN {
        source.add(*name, *text);
        source.add(format!("{name}.liquid"), *text);
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            TemplateError(format!(
                "EMAIL_TEMPLATES_PATH={}: cannot read the folder ({e})",
                dir.display()
            ))
        })?;
        let mut count = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(stem) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".liquid"))
            else {
                continue;
            };
            if !path.is_file() || !is_template_name(stem) {
                continue;
            }
            count += 1;
            if count > MAX_PARTIALS {
                return Err(TemplateError(format!(
                    "EMAIL_TEMPLATES_PATH={}: more than {MAX_PARTIALS} templates",
                    dir.display()
                )));
            }
            let text = read_file(&path)?;
            source.add(stem, text.clone());
            source.add(format!("{stem}.liquid"), text);
        }
    }
    liquid::ParserBuilder::with_stdlib()
        .filter(escape::Escape)
        .partials(liquid::partials::LazyCompiler::new(source))
        .build()
        .map_err(|e| TemplateError(format!("cannot build the template parser: {e}")))
}

/// The variables as Liquid values, every string HTML-escaped.
fn escaped(vars: &Map<String, serde_json::Value>) -> Object {
    fn value(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::scalar(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::scalar(i),
                None => Value::scalar(n.as_f64().unwrap_or(0.0)),
            },
            serde_json::Value::String(s) => Value::scalar(escape_html(s)),
            serde_json::Value::Array(a) => Value::Array(a.iter().map(value).collect()),
            serde_json::Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone().into(), value(v)))
                    .collect(),
            ),
        }
    }
    vars.iter()
        .map(|(k, v)| (k.clone().into(), value(v)))
        .collect()
}

/// `&`, `<`, `>`, `"` and `'` as entities: safe in text and in quoted attributes.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

static NIL: Value = Value::Nil;

/// The globals, with an unknown top-level name read as nil (liquidjs's default; the `liquid`
/// crate would fail the render).
struct Lenient<'a>(&'a Object);

impl std::fmt::Debug for Lenient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ValueView for Lenient<'_> {
    fn as_debug(&self) -> &dyn std::fmt::Debug {
        self
    }
    fn render(&self) -> DisplayCow<'_> {
        self.0.render()
    }
    fn source(&self) -> DisplayCow<'_> {
        self.0.source()
    }
    fn type_name(&self) -> &'static str {
        "object"
    }
    fn query_state(&self, state: State) -> bool {
        self.0.query_state(state)
    }
    fn to_kstr(&self) -> KStringCow<'_> {
        self.0.to_kstr()
    }
    fn to_value(&self) -> Value {
        Value::Object(self.0.clone())
    }
    fn as_object(&self) -> Option<&dyn ObjectView> {
        Some(self)
    }
}

impl ObjectView for Lenient<'_> {
    fn as_value(&self) -> &dyn ValueView {
        self
    }
    fn size(&self) -> i64 {
        self.0.size()
    }
    fn keys<'k>(&'k self) -> Box<dyn Iterator<Item = KStringCow<'k>> + 'k> {
        ObjectView::keys(self.0)
    }
    fn values<'k>(&'k self) -> Box<dyn Iterator<Item = &'k dyn ValueView> + 'k> {
        ObjectView::values(self.0)
    }
    fn iter<'k>(&'k self) -> Box<dyn Iterator<Item = (KStringCow<'k>, &'k dyn ValueView)> + 'k> {
        ObjectView::iter(self.0)
    }
    fn contains_key(&self, _index: &str) -> bool {
        true
    }
    fn get<'s>(&'s self, index: &str) -> Option<&'s dyn ValueView> {
        Some(ObjectView::get(self.0, index).unwrap_or(&NIL))
    }
}

/// `escape` that leaves entities alone, since every variable is escaped already.
mod escape {
    use liquid_core::{
        Display_filter, Filter, FilterReflection, ParseFilter, Result, Runtime, Value, ValueView,
    };

    #[derive(Clone, ParseFilter, FilterReflection)]
    #[filter(
        name = "escape",
        description = "Escapes HTML, leaving entities as they are.",
        parsed(EscapeFilter)
    )]
    pub struct Escape;

    #[derive(Debug, Default, Display_filter)]
    #[name = "escape"]
    struct EscapeFilter;

    impl Filter for EscapeFilter {
        fn evaluate(&self, input: &dyn ValueView, _runtime: &dyn Runtime) -> Result<Value> {
            if input.is_nil() {
                return Ok(Value::Nil);
            }
            let s = input.to_kstr();
            let entity = regex_entity();
            let mut out = String::with_capacity(s.len());
            let mut last = 0;
            for m in entity.find_iter(&s) {
                out.push_str(&super::escape_html(&s[last..m.start()]));
                out.push_str(m.as_str());
                last = m.end();
            }
            out.push_str(&super::escape_html(&s[last..]));
            Ok(Value::scalar(out))
        }
    }

    fn regex_entity() -> &'static regex::Regex {
        static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
        RE.get_or_init(|| {
            regex::Regex::new(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")
                .expect("BUG: the entity pattern is valid")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Map<String, serde_json::Value> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn all_vars() -> Map<String, serde_json::Value> {
        vars(&[
            ("url", "https://app.example/reset?token=tok-123&next=a"),
            ("email", "ann@example.com"),
            ("projectName", "Acme Portal"),
            ("projectColor", "#ff00aa"),
            ("projectLogo", "https://app.example/assets/logo-id"),
            ("projectUrl", "https://acme.example"),
        ])
    }

    #[test]
    fn built_in_templates_render_every_variable() {
        let t = Templates::built_in();
        for template in ALL {
            let html = t.render(template, &all_vars()).unwrap();
            for needle in [
                "https://app.example/reset?token=tok-123&amp;next=a",
                "ann@example.com",
                "Acme Portal",
                "#ff00aa",
                "https://app.example/assets/logo-id",
                "href=\"https://acme.example\"",
            ] {
                assert!(
                    html.contains(needle),
                    "{template:?} lacks {needle}:\n{html}"
                );
            }
            assert!(!html.contains("{%") && !html.contains("{{"), "{html}");
            assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        }
        // The reset mail says how long the link lasts.
        let html = t.render(Template::PasswordReset, &all_vars()).unwrap();
        assert!(html.contains("24 hours"));
        // Without a project URL, the footer has no link.
        let mut v = all_vars();
        v.insert("projectUrl".into(), "".into());
        let html = t.render(Template::UserInvitation, &v).unwrap();
        assert!(!html.contains("href=\"\""), "{html}");
    }

    #[test]
    fn variables_are_html_escaped() {
        let t = Templates::built_in();
        let mut v = all_vars();
        v.insert("projectName".into(), "<script>alert(1)</script>\"'&".into());
        let html = t.render(Template::PasswordReset, &v).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"),
            "{html}"
        );
    }

    #[test]
    fn escape_in_a_template_does_not_escape_twice_and_unknown_names_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password-reset.liquid"),
            "<b>{{ projectName | escape }}</b>[{{ nobody }}]{% if nobody %}x{% endif %}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let html = t
            .render(
                Template::PasswordReset,
                &vars(&[("projectName", "A & <B>")]),
            )
            .unwrap();
        assert_eq!(html, "<b>A &amp; &lt;B&gt;</b>[]");
    }

    #[test]
    fn directus_templates_with_layout_blocks_and_includes() {
        let dir = tempfile::tempdir().unwrap();
        // Directus's structure: a layout with named blocks and a default, a child that picks
        // the layout with either quote, and an include.
        std::fs::write(
            dir.path().join("base.liquid"),
            "<html>{% block content %}{{ html }}{% endblock %}|{% block footer %}default-footer{% endblock %}</html>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("user-invitation.liquid"),
            "{% layout 'base' %} {% block content %}<h1>Join {{ projectName }}</h1>{% include 'signature' %}{% endblock %}",
        )
        .unwrap();
        std::fs::write(dir.path().join("signature.liquid"), "<i>{{ email }}</i>").unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let html = t
            .render(
                Template::UserInvitation,
                &vars(&[("projectName", "P"), ("email", "e@x")]),
            )
            .unwrap();
        assert_eq!(
            html,
            "<html><h1>Join P</h1><i>e@x</i>|default-footer</html>"
        );
        // A block can wrap the layout's default.
        std::fs::write(
            dir.path().join("user-registration.liquid"),
            "{% layout \"base\" %}{% block footer %}[{{block.super}}]{% endblock %}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let html = t
            .render(Template::UserRegistration, &vars(&[("html", "raw")]))
            .unwrap();
        assert_eq!(html, "<html>raw|[default-footer]</html>");
        // The custom base is the layout of the built-in templates too, as in Directus.
        let html = t.render(Template::PasswordReset, &all_vars()).unwrap();
        assert!(
            html.starts_with("<html>\n<h1>Reset your password</h1>"),
            "{html}"
        );
    }

    #[test]
    fn broken_custom_templates_name_the_file() {
        for (file, text) in [
            ("password-reset.liquid", "{% if url %}unclosed"),
            ("user-registration.liquid", "{{ url | no_such_filter }}"),
            ("user-invitation.liquid", "{% layout 'missing' %}"),
            ("user-invitation.liquid", "{% layout 'base' x: 1 %}"),
            (
                "user-invitation.liquid",
                "{% block a %}{% block b %}{% endblock %}{% endblock %}",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(file), text).unwrap();
            let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
            assert!(err.contains(file), "{text}: {err}");
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.liquid"), "{% layout 'base' %}").unwrap();
        let err = Templates::load(Some(dir.path())).unwrap_err().to_string();
        assert!(
            err.contains("base.liquid") && err.contains("deeper"),
            "{err}"
        );
    }
}
