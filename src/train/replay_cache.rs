//! The replayed conversations of a demonstration file, cached beside it so a second start of
//! `coe train sft` (or `coe bench sft`) skips the replay that runs every demonstration's
//! tests in the sandbox (about a minute for `coe data gen`'s default output on two cores).
//!
//! One cache file per data file, `<dir>/.coe-cache/<name>.replay.json`, holding the key it
//! was made under: the data file's sha256 and the environment and sandbox settings that
//! shape an episode's text. A different key (the file or a setting changed) is a miss and
//! the new replay overwrites it; a cache that cannot be read is a miss, one that cannot be
//! written costs only the next start's replay.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::EnvSection;
use crate::model::chat::{Message, Role};
use crate::protocol::run::Limits;

/// Bumped when replay's output changes for the same inputs.
const VERSION: u32 = 1;

/// A replayed conversation: (example id, messages), `None` for a failed replay.
pub type Conversation = Option<(String, Vec<Message>)>;

/// Where a data file's replay is cached, and under which key.
#[derive(Debug, Clone)]
pub struct ReplayCache {
    path: PathBuf,
    key: String,
}

/// A conversation as stored: (example id, [(role, text)]).
type StoredConversation = Option<(String, Vec<(String, String)>)>;

#[derive(Serialize, Deserialize)]
struct Stored {
    key: String,
    conversations: Vec<StoredConversation>,
}

impl ReplayCache {
    /// The cache of `data` replayed under `env` and `limits`; reads the file to hash it.
    pub fn for_file(data: &Path, env: &EnvSection, limits: &Limits) -> std::io::Result<Self> {
        let mut h = Sha256::new();
        h.update(VERSION.to_le_bytes());
        h.update(std::fs::read(data)?);
        h.update(serde_json::to_vec(&(env, limits)).map_err(std::io::Error::other)?);
        let key = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let name = data
            .file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned());
        let dir = data.parent().unwrap_or(Path::new("."));
        Ok(ReplayCache {
            path: dir.join(".coe-cache").join(format!("{name}.replay.json")),
            key,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached conversations, if the cache holds this key.
    pub fn load(&self) -> Option<Vec<Conversation>> {
        let stored: Stored = serde_json::from_slice(&std::fs::read(&self.path).ok()?).ok()?;
        if stored.key != self.key {
            return None;
        }
        stored
            .conversations
            .into_iter()
            .map(|c| match c {
                None => Some(None),
                Some((id, msgs)) => {
                    let msgs = msgs
                        .into_iter()
                        .map(|(role, text)| Some(Message::new(role_of(&role)?, text)))
                        .collect::<Option<Vec<_>>>()?;
                    Some(Some((id, msgs)))
                }
            })
            .collect()
    }

    /// Stores `conversations` under this key (written whole or not at all).
    pub fn store(&self, conversations: &[Conversation]) -> std::io::Result<()> {
        let stored = Stored {
            key: self.key.clone(),
            conversations: conversations
                .iter()
                .map(|c| {
                    c.as_ref().map(|(id, msgs)| {
                        let msgs = msgs
                            .iter()
                            .map(|m| (m.role.as_str().to_string(), m.content.clone()))
                            .collect();
                        (id.clone(), msgs)
                    })
                })
                .collect(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec(&stored).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn role_of(name: &str) -> Option<Role> {
    [Role::System, Role::User, Role::Assistant]
        .into_iter()
        .find(|r| r.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversations() -> Vec<Conversation> {
        vec![
            Some((
                "t1".into(),
                vec![
                    Message::new(Role::User, "fix it"),
                    Message::new(Role::Assistant, "### DELETE 3"),
                ],
            )),
            None,
        ]
    }

    #[test]
    fn a_second_start_hits_and_a_changed_file_or_setting_misses() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("train.demos.jsonl");
        std::fs::write(&data, "{\"turns\": []}\n").unwrap();
        let (env, limits) = (EnvSection::default(), Limits::default());
        let cache = ReplayCache::for_file(&data, &env, &limits).unwrap();
        assert!(cache.load().is_none(), "nothing cached yet");
        cache.store(&conversations()).unwrap();
        let again = ReplayCache::for_file(&data, &env, &limits).unwrap();
        assert_eq!(again.load(), Some(conversations()), "second start hits");

        let other_env = EnvSection {
            max_turns: env.max_turns + 1,
            ..env.clone()
        };
        let changed = ReplayCache::for_file(&data, &other_env, &limits).unwrap();
        assert_eq!(changed.path(), cache.path(), "one cache file per data file");
        assert!(changed.load().is_none(), "an env setting changed: miss");
        let mut other_limits = limits.clone();
        other_limits.cpu_s += 1;
        assert!(
            ReplayCache::for_file(&data, &env, &other_limits)
                .unwrap()
                .load()
                .is_none(),
            "a sandbox limit changed: miss"
        );

        std::fs::write(&data, "{\"turns\": [], \"x\": 1}\n").unwrap();
        let edited = ReplayCache::for_file(&data, &env, &limits).unwrap();
        assert!(edited.load().is_none(), "the file changed: miss");
        edited.store(&conversations()[1..]).unwrap();
        assert_eq!(edited.load(), Some(conversations()[1..].to_vec()));
        assert!(
            cache.load().is_none(),
            "the new replay replaced the old one"
        );
    }
}
