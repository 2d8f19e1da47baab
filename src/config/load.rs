//! Reading settings: built-in defaults, then TOML files, then `GATEWAY__SECTION__KEY` variables.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::SecretString;

use super::{ConfigError, DEFAULT_FILE, Settings};
use crate::env;

/// Where settings come from: files in order (or the default file), and environment overrides.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    pub files: Vec<PathBuf>,
    /// `None` reads the process environment; tests pass their own map.
    pub env: Option<HashMap<String, String>>,
}

impl Settings {
    /// Loads and validates.
    pub fn load(sources: &Sources) -> Result<Self, ConfigError> {
        use config::{Config, Environment, File, FileFormat};
        let mut builder = Config::builder();
        if sources.files.is_empty() {
            builder = builder.add_source(File::new(DEFAULT_FILE, FileFormat::Toml).required(false));
        }
        for file in &sources.files {
            builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
        }
        let env = Environment::with_prefix(env::CONFIG_PREFIX)
            .prefix_separator(env::CONFIG_SEPARATOR)
            .separator(env::CONFIG_SEPARATOR)
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("server.cors_allowed_origins")
            .source(sources.env.clone());
        let settings: Settings = builder
            .add_source(env)
            .build()
            .and_then(Config::try_deserialize)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        let mut settings = settings;
        if settings.store.redis_url.is_none() {
            let redis_url = match &sources.env {
                Some(map) => map.get(env::REDIS_URL).cloned(),
                None => std::env::var(env::REDIS_URL).ok(),
            };
            settings.store.redis_url = redis_url.filter(|u| !u.is_empty()).map(SecretString::from);
        }
        settings.validate()?;
        Ok(settings)
    }
}
