//! Definition keys (BuildKit's definition-based cache keys, looked up
//! before its content-based ones): a `COPY --from` is first looked up by
//! its definition and the key of the stage or image it copies from. A hit
//! reads none of that source's files, so a fully cached build whose
//! output is a push fetches no layer of a stage it copies from. The
//! record under a definition key names the content key it resolved to,
//! which later steps build on, so their keys are the same either way.

use super::SolveError;
use super::schedule::{Shared, imported_hit, now_secs, stored_hit};
use crate::cache::CacheRecord;
use crate::digest::Digest;
use crate::ops::StageResult;
use crate::ops::key::{KeyParts, key_parts_of};
use crate::progress::Event;

/// The record component naming the content key a definition key resolved to.
pub const CONTENT_KEY: &str = "content-key";

/// The step id under which definition records are kept (apart from the
/// step's content records, which explain its misses).
fn definition_step_id(step_id: &str) -> String {
    format!("{step_id}#definition")
}

/// The content key a definition record names.
fn content_key(components: &[(String, String)]) -> Option<Digest> {
    components
        .iter()
        .find(|(n, _)| n == CONTENT_KEY)
        .and_then(|(_, v)| v.parse().ok())
}

impl Shared {
    /// A step found by its definition key, in the store or an imported
    /// cache: its result, under the content key it resolved to.
    pub(super) fn definition_hit(
        &self,
        parts: &KeyParts,
        (si, step_id): (usize, &str),
        vid: usize,
    ) -> Result<Option<StageResult>, SolveError> {
        if self.req.no_cache {
            return Ok(None);
        }
        let key = parts.key();
        let stored = self.store.get_record(&key).map(|r| r.components);
        let (mut r, components) = match stored.as_deref().and_then(content_key) {
            Some(_) => match stored_hit(self, &key, parts.parts.len(), vid, (false, false)) {
                Some(r) => (r, stored.unwrap_or_default()),
                None => return Ok(None),
            },
            None => {
                let id = definition_step_id(step_id);
                match imported_hit(self, &key, None, &id, vid)? {
                    Some(r) => match self.store.record_for_export(&key) {
                        Some(rec) => (r, rec.components),
                        None => return Ok(None),
                    },
                    None => return Ok(None),
                }
            }
        };
        let Some(content) = content_key(&components) else {
            // An imported record without its content key: not usable.
            return Ok(None);
        };
        if self.req.explain {
            let line = format!(
                "cache hit by definition: key {key} (the definition and the key of what it copies from unchanged; its files not read) resolves to {content}"
            );
            self.send_for(vid, Event::Log { id: vid, line });
        }
        // In the order of a build that ran the step: content, then definition.
        self.keep_content_record(si, step_id, &content)?;
        self.note_step(si, key, &components, true);
        r.key = content;
        Ok(Some(r))
    }

    /// Note the content key's record for `--cache-to` too (the same
    /// parts as a build that ran the step), first copied from an
    /// imported cache when only that has it.
    fn keep_content_record(
        &self,
        si: usize,
        step_id: &str,
        content: &Digest,
    ) -> Result<(), SolveError> {
        let parts = match self.store.record_for_export(content) {
            Some(rec) => key_parts_of(&rec.components),
            None => {
                let found = self
                    .req
                    .imported
                    .as_ref()
                    .map(|i| i.find(&self.store, content));
                let Some(Ok(Some(hit))) = found else {
                    return Ok(());
                };
                self.store.put_record(&CacheRecord {
                    key: *content,
                    step_id: step_id.to_string(),
                    components: hit.parts.clone(),
                    layers: hit.layers,
                    config: hit.config,
                    created: now_secs(),
                })?;
                key_parts_of(&hit.parts)
            }
        };
        // Only parts that make the key (not a foreign record's).
        if parts.key() == *content {
            self.note_step(si, *content, &parts.parts, true);
        }
        Ok(())
    }

    /// Keep `r` (the step's result, by content key) under its definition
    /// key too, for the next build and for `--cache-to`.
    pub(super) fn record_definition(
        &self,
        parts: &KeyParts,
        (si, step_id): (usize, &str),
        r: &StageResult,
    ) -> Result<(), SolveError> {
        let key = parts.key();
        let mut components = parts.parts.clone();
        components.push((CONTENT_KEY.to_string(), r.key.to_string()));
        self.store.put_record(&CacheRecord {
            key,
            step_id: definition_step_id(step_id),
            components: components.clone(),
            layers: r.state.layers.clone(),
            config: r.state.config_json(),
            created: now_secs(),
        })?;
        self.note_step(si, key, &components, true);
        Ok(())
    }
}
