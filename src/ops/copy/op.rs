//! The COPY/ADD op: its canonical definition, its inputs (sources and
//! their digests), and its execution into a new layer.

use super::previous::previous_copy;
use super::sources::{CopyInputs, fetch_into, file_listings};
use super::{CopyPlan, InlineFile, Unpack, execute, parse_chmod};
use crate::digest::Digest;
use crate::image::ImageState;
use crate::layer::view::MergedView;
use crate::ops::key::KeyParts;
use crate::ops::op::{
    CacheMap, ExecCtx, Op, OpEnv, OpError, Source, history, now_or_epoch, view_of,
};
use crate::ops::users::chown_ids;

/// `COPY` or `ADD`, lowered.
#[derive(Debug, Clone, Default)]
pub struct CopyOp {
    /// ADD (URLs, archives unpacked) rather than COPY.
    pub add: bool,
    /// Sources as written (expanded).
    pub sources: Vec<String>,
    /// Heredoc sources.
    pub inline: Vec<InlineFile>,
    /// Destination.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--parents`.
    pub parents: bool,
    /// `--from`, resolved.
    pub from: Option<Source>,
    /// `--from` as written (for the definition and history).
    pub from_text: Option<String>,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--unpack`.
    pub unpack: Option<bool>,
}

impl CopyOp {
    fn history_text(&self) -> String {
        let mut words = vec![if self.add { "ADD" } else { "COPY" }.to_string()];
        let mut flags = Vec::new();
        if let Some(f) = self.from_text.as_ref().filter(|_| !self.add) {
            flags.push(format!("--from={f}"));
        }
        if let Some(c) = &self.chown {
            flags.push(format!("--chown={c}"));
        }
        if let Some(c) = &self.chmod {
            flags.push(format!("--chmod={c}"));
        }
        if self.link {
            flags.push("--link".into());
        }
        if !flags.is_empty() {
            words.push(flags.join(" "));
        }
        words.extend(self.sources.iter().cloned());
        words.extend(self.inline.iter().map(|i| format!("<<{}", i.name)));
        words.push(self.dest.clone());
        format!("{} # buildkit", words.join(" "))
    }

    fn layer(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        inputs: CopyInputs,
        previous: Option<super::Previous>,
    ) -> Result<Option<crate::cache::LayerRef>, OpError> {
        let full_view = view_of(env.store, parent);
        let empty = MergedView::default();
        let base = if self.link { &empty } else { &full_view };
        let owner = match &self.chown {
            Some(c) => Some(chown_ids(&full_view, c)?),
            // Context files belong to root; files from another stage keep their owner (as BuildKit).
            None if inputs.from_view.is_none() => Some((0, 0)),
            None => None,
        };
        let chmod = match &self.chmod {
            Some(m) => Some(parse_chmod(m)?),
            None => None,
        };
        let mut selections = inputs.selections;
        // Lives until the files are copied.
        let fetched = match inputs.lazy_urls.is_empty() {
            true => None,
            false => Some(env.store.temp_dir("download")?),
        };
        if let Some(dir) = &fetched {
            for (i, (url, sum)) in inputs.lazy_urls.iter().enumerate() {
                selections.push(fetch_into(dir, i, url, Some(sum))?);
            }
        }
        let unpack = match (self.add, self.unpack) {
            (false, _) | (true, Some(false)) => Unpack::Never,
            (true, Some(true)) => Unpack::All,
            (true, None) => Unpack::Local,
        };
        let tmp = env.store.temp_dir("copy")?;
        let plan = CopyPlan {
            sources: &selections,
            inline: &self.inline,
            dest: &self.dest,
            workdir: &parent.config.config.working_dir,
            owner,
            chmod,
            parents: self.parents,
            exclude: &self.exclude,
            base,
            created_time: env.epoch.map(|e| e as i64).unwrap_or(0),
            unpack: if inputs.from_view.is_none() {
                unpack
            } else {
                Unpack::Never
            },
            // Reuse shares inodes with the previous layer: never when mtimes
            // will be clamped afterwards (that would touch the previous layer).
            previous: previous.as_ref().filter(|_| env.epoch.is_none()),
        };
        execute(&plan, tmp.path())?;
        Ok(crate::layer::commit::commit_layer(
            env.store, env.epoch, tmp,
        )?)
    }
}

impl Op for CopyOp {
    fn kind(&self) -> &'static str {
        if self.add { "ADD" } else { "COPY" }
    }

    fn reads_parent_files(&self) -> bool {
        // `--link` builds on nothing; only a named owner is looked up in
        // the parent's /etc/passwd and /etc/group.
        let numeric = |c: &str| c.split(':').all(|p| p.parse::<u32>().is_ok());
        !self.link || self.chown.as_deref().is_some_and(|c| !numeric(c))
    }

    fn definition(&self) -> String {
        if self.add {
            format!(
                "dest={} chown={:?} chmod={:?} link={} exclude={:?} checksum={:?} unpack={:?}",
                self.dest,
                self.chown,
                self.chmod,
                self.link,
                self.exclude,
                self.checksum,
                self.unpack
            )
        } else {
            format!(
                "dest={} chown={:?} chmod={:?} link={} parents={:?} exclude={:?} from={:?}",
                self.dest,
                self.chown,
                self.chmod,
                self.link,
                // With --parents the sources as written (their `/./` pivots)
                // decide where files land.
                self.parents.then_some(&self.sources),
                self.exclude,
                self.from_text
            )
        }
    }

    fn cache_map(&self, env: &OpEnv<'_>, parent_key: &Digest) -> Result<CacheMap, OpError> {
        let mut map = CacheMap::new(parent_key, self.kind(), self.definition());
        let inputs = self.resolve(env, &mut map.parts)?;
        map.inputs = Some(Box::new(inputs));
        Ok(map)
    }

    fn definition_key(
        &self,
        env: &OpEnv<'_>,
        parent_key: &Digest,
    ) -> Result<Option<KeyParts>, OpError> {
        // Another stage's or an image's files are known by its key; the
        // context's and a URL's only by their content.
        let from = match &self.from {
            Some(s @ (Source::Stage(_) | Source::Image(_))) if !self.add => s,
            _ => return Ok(None),
        };
        let mut parts = KeyParts::new(parent_key, self.kind());
        parts.add("def", self.definition());
        parts.add("by", "definition");
        parts.add("sources", format!("{:?}", self.sources));
        for inline in &self.inline {
            let digest = Digest::of(inline.content.as_bytes());
            parts.add(format!("inline:{}", inline.name), digest.to_string());
        }
        parts.add("from", (env.source_key)(from)?.to_string());
        Ok(Some(parts))
    }

    fn explain_inputs(
        &self,
        env: &OpEnv<'_>,
        map: &CacheMap,
    ) -> Result<Vec<(String, String)>, OpError> {
        match map
            .inputs
            .as_ref()
            .and_then(|i| i.downcast_ref::<CopyInputs>())
        {
            Some(inputs) => file_listings(env.store, &inputs.selections),
            None => Ok(Vec::new()),
        }
    }

    fn exec(
        &self,
        env: &OpEnv<'_>,
        parent: &ImageState,
        map: CacheMap,
        ctx: &ExecCtx<'_>,
    ) -> Result<ImageState, OpError> {
        let previous = ctx
            .previous
            .and_then(|p| previous_copy(env.store, p, &map.parts, parent));
        let inputs = map
            .inputs
            .and_then(|i| i.downcast::<CopyInputs>().ok())
            .ok_or_else(|| OpError::Internal("COPY ran without its inputs".into()))?;
        let layer = self.layer(env, parent, *inputs, previous)?;
        let mut state = parent.clone();
        let has = layer.is_some();
        state.layers.extend(layer);
        let created = Some(now_or_epoch(env.epoch));
        history(&mut state.config, created, self.history_text(), has);
        Ok(state)
    }
}
