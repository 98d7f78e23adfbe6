//! Authentication and access-control files in Mosquitto's formats: the password file
//! (`password_file.rs`, and the `wren-passwd` tool) and the ACL file (`acl.rs`), loaded by
//! [`load_listener_access`] and handed to the core as its `UserStore` and `TopicRules`
//! (the core's `access.rs`).

pub mod acl;
pub mod password_file;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::core::{ListenerAccess, TopicRules, UserStore};

/// Load every listener's password and ACL files (each file once, however many listeners name
/// it) into the rules the core applies ([`crate::Broker::set_listener_access`]). The error is
/// the first file that cannot be used, with its line: at start the broker does not start, on a
/// reload the previous rules stay.
pub fn load_listener_access(config: &Config) -> Result<Vec<ListenerAccess>, String> {
    let mut users: HashMap<PathBuf, Arc<dyn UserStore>> = HashMap::new();
    let mut rules: HashMap<PathBuf, Arc<dyn TopicRules>> = HashMap::new();
    let mut out = Vec::new();
    for listener in config.listeners() {
        let security = config.security(&listener);
        let user_store = match &security.password_file {
            None => None,
            Some(path) => Some(cached(&mut users, path, |p| {
                password_file::PasswordFile::load(p)
                    .map(|f| Arc::new(f) as Arc<dyn UserStore>)
                    .map_err(|e| format!("Error in password_file: {e}"))
            })?),
        };
        let topic_rules = match &security.acl_file {
            None => None,
            Some(path) => Some(cached(&mut rules, path, |p| {
                acl::AclFile::load(p)
                    .map(|f| Arc::new(f) as Arc<dyn TopicRules>)
                    .map_err(|e| format!("Error in acl_file: {e}"))
            })?),
        };
        out.push(ListenerAccess {
            allow_anonymous: security.allow_anonymous,
            users: user_store,
            rules: topic_rules,
        });
    }
    Ok(out)
}

/// `path` loaded by `load`, or the copy loaded for an earlier listener.
fn cached<T: ?Sized>(
    cache: &mut HashMap<PathBuf, Arc<T>>,
    path: &Path,
    load: impl FnOnce(&Path) -> Result<Arc<T>, String>,
) -> Result<Arc<T>, String> {
    if let Some(loaded) = cache.get(path) {
        return Ok(Arc::clone(loaded));
    }
    let loaded = load(path)?;
    cache.insert(path.to_owned(), Arc::clone(&loaded));
    Ok(loaded)
}

/// What can be wrong with a line or file of one format (its `Problem`).
pub trait FileProblem: fmt::Display + fmt::Debug {
    /// The read error, when the file could not be read.
    fn io(&self) -> Option<&std::io::Error>;
}

/// A security file that cannot be used: which file (when loaded from one), which 1-based line
/// (`None` when the whole file is at fault), and what is wrong. Displayed as
/// `acl.conf line 7: unknown access type 'writee'`.
#[derive(Debug)]
pub struct FileError<P> {
    pub(in crate::security) file: Option<PathBuf>,
    pub(in crate::security) line: Option<usize>,
    pub(in crate::security) problem: P,
}

impl<P> FileError<P> {
    /// The file, as given to `load`; `None` from `parse`.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The 1-based line; `None` if the whole file is at fault (it could not be read).
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What is wrong.
    pub fn problem(&self) -> &P {
        &self.problem
    }
}

impl<P: fmt::Display> fmt::Display for FileError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{} line {line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        self.problem.fmt(f)
    }
}

impl<P: FileProblem> std::error::Error for FileError<P> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.problem
            .io()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}
