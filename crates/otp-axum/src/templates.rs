//! Templates: minijinja with built-in defaults that an app overrides one by one from a folder.

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::Environment;

/// The built-in templates, by name.
const BUILT_IN: &[(&str, &str)] = &[];

/// The template environment.
#[derive(Clone)]
pub(crate) struct Templates {
    env: Arc<Environment<'static>>,
}

impl Templates {
    pub(crate) fn new(dir: Option<PathBuf>) -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if let Some(dir) = &dir {
                if !name.contains("..") {
                    match std::fs::read_to_string(dir.join(name)) {
                        Ok(text) => return Ok(Some(text)),
                        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                        Err(err) => {
                            return Err(minijinja::Error::new(
                                minijinja::ErrorKind::InvalidOperation,
                                "a template could not be read",
                            )
                            .with_source(err));
                        }
                    }
                }
            }
            Ok(BUILT_IN
                .iter()
                .find(|(builtin, _)| *builtin == name)
                .map(|(_, text)| (*text).to_owned()))
        });
        Ok(Self { env: Arc::new(env) })
    }

    pub(crate) fn render(
        &self,
        name: &str,
        context: minijinja::Value,
    ) -> Result<String, minijinja::Error> {
        self.env.get_template(name)?.render(context)
    }
}
