//! The messages' templates: a text body, an HTML body and a subject for every [`Kind`],
//! built in or overridden from a directory, rendered with minijinja (HTML autoescaped, text
//! and subjects not; an undefined variable is an error, so a typo fails at load).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use minijinja::value::{Serde, Value};
use minijinja::{context, AutoEscape, Environment, UndefinedBehavior};

use crate::{Context, Kind, TemplateError};

/// A message rendered for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject, on one line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
}

/// Per kind: the built-in text and HTML bodies (`templates/<name>.txt`, `.html`), and the
/// default subject.
macro_rules! builtin {
    ($($kind:ident $name:literal $subject:literal,)*) => {
        [$((
            Kind::$kind,
            include_str!(concat!("../templates/", $name, ".txt")),
            include_str!(concat!("../templates/", $name, ".html")),
            $subject,
        ),)*]
    };
}

const BUILTIN: [(Kind, &str, &str, &str); 9] = builtin! {
    Confirmation "confirmation" "Confirm your email for {{ site_name }}",
    MagicLink "magic_link" "Your {{ site_name }} sign-in link and code",
    Recovery "recovery" "Reset your password for {{ site_name }}",
    EmailChangeCurrent "email_change_current" "Your {{ site_name }} email is being changed to \
        {{ new_email or 'a new address' }}",
    EmailChangeNew "email_change_new" "Confirm your new email address for {{ site_name }}",
    Reauthentication "reauthentication" "Your reauthentication code for {{ site_name }}",
    Invite "invite" "You have been invited to {{ site_name }}",
    Unlock "unlock" "Unlock your {{ site_name }} account",
    ExistingAccount "existing_account"
        "Someone tried to sign up to {{ site_name }} with your address",
};

/// One template's source, and where it came from (for errors).
struct Source {
    text: Cow<'static, str>,
    origin: String,
}

/// The compiled templates of every kind. Cheap to clone and share.
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    origins: Arc<HashMap<String, String>>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut overrides: Vec<&String> = self
            .origins
            .values()
            .filter(|origin| !origin.starts_with("built-in"))
            .collect();
        overrides.sort();
        f.debug_struct("Templates")
            .field("overrides", &overrides)
            .finish()
    }
}

impl Templates {
    /// The built-in templates and subjects. They are compiled on first use; the crate's tests
    /// render every one, which is why this cannot fail.
    pub fn builtin() -> Templates {
        Templates::new(builtin_sources())
    }

    /// The built-ins, with any `<name>.txt` / `<name>.html` found in `dir` replacing the
    /// built-in one and any subject in `subjects` replacing the default. Every template is
    /// compiled and test-rendered here with [`Context::example`], so a broken one fails at
    /// start-up, naming its file. A `.txt` or `.html` file whose stem is no [`Kind::name`] is
    /// an error (a typo must not be ignored); other files are ignored. Reads the directory
    /// with blocking I/O: call it at start-up.
    pub fn load(
        dir: Option<&Path>,
        subjects: &HashMap<Kind, String>,
    ) -> Result<Templates, TemplateError> {
        let mut sources = builtin_sources();
        for (kind, subject) in subjects {
            let origin = format!("subject of {}", kind.name());
            let text = Cow::Owned(subject.clone());
            sources.insert(subject_name(*kind), Source { text, origin });
        }
        if let Some(dir) = dir {
            let io = |path: &Path| {
                let path = path.to_owned();
                move |source| TemplateError::Io { path, source }
            };
            for entry in std::fs::read_dir(dir).map_err(io(dir))? {
                let path = entry.map_err(io(dir))?.path();
                let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                    continue;
                };
                let Some(stem) = name
                    .strip_suffix(".txt")
                    .or_else(|| name.strip_suffix(".html"))
                else {
                    continue;
                };
                if Kind::from_name(stem).is_none() {
                    return Err(TemplateError::UnknownFile { path });
                }
                let text = Cow::Owned(std::fs::read_to_string(&path).map_err(io(&path))?);
                let origin = path.display().to_string();
                sources.insert(name.to_owned(), Source { text, origin });
            }
        }
        let templates = Templates::new(sources);
        let example = Context::example();
        for kind in Kind::ALL {
            templates.render(kind, &example)?;
        }
        Ok(templates)
    }

    /// Renders `kind` for `ctx`. The subject's whitespace, newlines included, is collapsed so
    /// it stays one header line.
    pub fn render(&self, kind: Kind, ctx: &Context) -> Result<Rendered, TemplateError> {
        let values = context! {
            expires_in => expires_in(ctx.expires_minutes),
            ..Value::from(Serde(ctx))
        };
        let render = |name: String| {
            self.env
                .get_template(&name)
                .and_then(|template| template.render(values.clone()))
                .map_err(|err| TemplateError::Invalid {
                    template: self.origins.get(&name).cloned().unwrap_or(name),
                    message: err.to_string(),
                })
        };
        let subject = render(subject_name(kind))?;
        Ok(Rendered {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: render(format!("{}.txt", kind.name()))?,
            html: render(format!("{}.html", kind.name()))?,
        })
    }

    fn new(sources: HashMap<String, Source>) -> Templates {
        let origins = sources
            .iter()
            .map(|(name, source)| (name.clone(), source.origin.clone()))
            .collect();
        let texts: HashMap<String, Cow<'static, str>> = sources
            .into_iter()
            .map(|(name, source)| (name, source.text))
            .collect();
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // A loader rather than add_template: compiling can fail, and `builtin` cannot.
        env.set_loader(move |name| Ok(texts.get(name).map(|text| text.to_string())));
        Templates {
            env: Arc::new(env),
            origins: Arc::new(origins),
        }
    }
}

fn builtin_sources() -> HashMap<String, Source> {
    let mut sources = HashMap::new();
    for (kind, text, html, subject) in BUILTIN {
        for (name, text) in [
            (format!("{}.txt", kind.name()), text),
            (format!("{}.html", kind.name()), html),
            (subject_name(kind), subject),
        ] {
            let origin = format!("built-in {name}");
            let text = Cow::Borrowed(text);
            sources.insert(name, Source { text, origin });
        }
    }
    sources
}

/// The subject's template name: no `.html`, so it is not escaped.
fn subject_name(kind: Kind) -> String {
    format!("{}.subject", kind.name())
}

/// "10 minutes", "1 hour", "2 days": the largest unit that divides the duration.
fn expires_in(minutes: u64) -> String {
    let (n, unit) = match minutes {
        m if m >= 1440 && m % 1440 == 0 => (m / 1440, "day"),
        m if m >= 60 && m % 60 == 0 => (m / 60, "hour"),
        m => (m, "minute"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hostile() -> Context {
        Context {
            email: "<script>alert(1)</script>@example.com".to_owned(),
            ..Context::example()
        }
    }

    #[test]
    fn every_kind_renders_the_code_the_link_and_the_expiry_in_both_bodies() {
        let templates = Templates::builtin();
        let ctx = Context::example();
        for kind in Kind::ALL {
            let r = templates.render(kind, &ctx).unwrap();
            assert!(
                !r.subject.is_empty() && !r.subject.contains('\n'),
                "{kind:?}"
            );
            assert!(r.text.contains(&ctx.code), "{kind:?} text code");
            assert!(r.text.contains(&ctx.link), "{kind:?} text link");
            assert!(r.text.contains("1 hour"), "{kind:?} text expiry");
            assert!(r.html.contains(&ctx.code), "{kind:?} html code");
            let link = "https:&#x2f;&#x2f;auth.example.com&#x2f;verify?token=abc&amp;type=signup";
            assert!(r.html.contains(link), "{kind:?} html link");
            assert!(r.html.contains("1 hour"), "{kind:?} html expiry");
            // Self-contained: nothing to fetch when the message is opened.
            assert!(
                !r.html.contains("<img") && !r.html.contains("<link"),
                "{kind:?}"
            );
            assert!(!r.html.contains("{{") && !r.text.contains("{{"), "{kind:?}");
        }
        let change = templates.render(Kind::EmailChangeCurrent, &ctx).unwrap();
        assert!(change.subject.contains("someone.new@example.com"));
    }

    #[test]
    fn html_escapes_a_hostile_address_and_text_keeps_it_literal() {
        let r = Templates::builtin()
            .render(Kind::Confirmation, &hostile())
            .unwrap();
        assert!(!r.html.contains("<script>"));
        assert!(r.html.contains("&lt;script&gt;"));
        assert!(r.text.contains("<script>alert(1)</script>@example.com"));
    }

    #[test]
    fn an_override_file_and_a_subject_replace_the_builtins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("recovery.txt"),
            "Code {{ code }} {{ link }}",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), "not a template").unwrap();
        let subjects = HashMap::from([(Kind::Recovery, "Reset\n{{ site_name }}".to_owned())]);
        let templates = Templates::load(Some(dir.path()), &subjects).unwrap();
        let ctx = Context::example();
        let r = templates.render(Kind::Recovery, &ctx).unwrap();
        assert_eq!(r.text, format!("Code 123456 {}", ctx.link));
        assert_eq!(r.subject, "Reset gatehouse");
        assert_eq!(
            r.html,
            Templates::builtin()
                .render(Kind::Recovery, &ctx)
                .unwrap()
                .html
        );
        assert!(format!("{templates:?}").contains("recovery.txt"));
    }

    #[test]
    fn a_broken_template_fails_at_load_naming_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("invite.html");
        std::fs::write(&path, "<p>{{ code </p>").unwrap();
        let err = Templates::load(Some(dir.path()), &HashMap::new()).unwrap_err();
        assert!(matches!(err, TemplateError::Invalid { .. }));
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );

        // An undefined variable is as broken as a syntax error.
        std::fs::write(&path, "<p>{{ cod }}</p>").unwrap();
        let err = Templates::load(Some(dir.path()), &HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("invite.html"), "{err}");

        let subjects = HashMap::from([(Kind::Unlock, "{% if %}".to_owned())]);
        let err = Templates::load(None, &subjects).unwrap_err();
        assert!(err.to_string().contains("subject of unlock"), "{err}");
    }

    #[test]
    fn an_unknown_template_file_fails_at_load() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("confirm.txt"), "{{ code }}").unwrap();
        let err = Templates::load(Some(dir.path()), &HashMap::new()).unwrap_err();
        assert!(matches!(err, TemplateError::UnknownFile { .. }));
        assert!(err.to_string().contains("confirm.txt"), "{err}");

        let missing = dir.path().join("missing");
        let err = Templates::load(Some(&missing), &HashMap::new()).unwrap_err();
        assert!(matches!(err, TemplateError::Io { .. }));
    }

    #[test]
    fn the_expiry_is_said_in_the_largest_unit_that_fits() {
        assert_eq!(expires_in(1), "1 minute");
        assert_eq!(expires_in(10), "10 minutes");
        assert_eq!(expires_in(90), "90 minutes");
        assert_eq!(expires_in(120), "2 hours");
        assert_eq!(expires_in(1440), "1 day");
    }
}
