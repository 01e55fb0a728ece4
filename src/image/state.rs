//! An image's state during a build: its layers and its config.

use super::config::ImageConfig;
use crate::cache::{CacheRecord, LayerRef};
use serde::{Deserialize, Serialize};

/// The state of an image after a step: its layers and its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageState {
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The image config (history included).
    pub config: ImageConfig,
}

impl ImageState {
    /// The state a cache record holds (None when its config does not parse).
    pub fn from_record(rec: &CacheRecord) -> Option<ImageState> {
        Some(ImageState {
            layers: rec.layers.clone(),
            config: serde_json::from_value(rec.config.clone()).ok()?,
        })
    }

    /// The config as a record stores it.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).unwrap_or_default()
    }
}
