//! Schemas providers publish for their resource kinds: attributes with type, whether they are
//! required, optional or computed, sensitive, and whether a change forces replacement; nested
//! blocks. The engine validates configuration and decides plan actions from these.
//!
//! The JSON Schemas of kiln's state and plan files live beside this crate in `schemas/json/`.

use std::collections::BTreeMap;

use kiln_value::{Type, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub ty: Type,
    pub required: bool,
    pub optional: bool,
    /// Set by the provider (possibly also settable when `optional`).
    pub computed: bool,
    pub sensitive: bool,
    /// Changing it destroys and recreates the resource.
    pub force_new: bool,
    pub description: &'static str,
    /// Value used when the configuration leaves an optional attribute out.
    pub default: Option<Value>,
}

impl Attribute {
    fn base(ty: Type, description: &'static str) -> Self {
        Attribute { ty, required: false, optional: false, computed: false, sensitive: false, force_new: false, description, default: None }
    }
    pub fn required(ty: Type, description: &'static str) -> Self {
        Attribute { required: true, ..Attribute::base(ty, description) }
    }
    pub fn optional(ty: Type, description: &'static str) -> Self {
        Attribute { optional: true, ..Attribute::base(ty, description) }
    }
    pub fn computed(ty: Type, description: &'static str) -> Self {
        Attribute { computed: true, ..Attribute::base(ty, description) }
    }
    /// Optional in config, computed by the provider when left out.
    pub fn optional_computed(ty: Type, description: &'static str) -> Self {
        Attribute { optional: true, computed: true, ..Attribute::base(ty, description) }
    }
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
    pub fn default(mut self, v: impl Into<Value>) -> Self {
        self.default = Some(v.into());
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nesting {
    /// At most one block; its value is an object (or null when absent).
    Single,
    /// Any number of blocks; the value is a list of objects.
    List,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub nesting: Nesting,
    pub body: Body,
    pub min_items: usize,
    pub max_items: Option<usize>,
    pub force_new: bool,
    pub description: &'static str,
}

/// Attributes and nested blocks of a resource kind, provider configuration or nested block.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Body {
    pub attributes: BTreeMap<String, Attribute>,
    pub blocks: BTreeMap<String, Block>,
}

impl Body {
    pub fn new() -> Self {
        Body::default()
    }
    pub fn attr(mut self, name: &str, a: Attribute) -> Self {
        self.attributes.insert(name.to_string(), a);
        self
    }
    pub fn block(mut self, name: &str, b: Block) -> Self {
        self.blocks.insert(name.to_string(), b);
        self
    }

    /// Attribute paths (top-level names, or `block.attr`) whose value is sensitive.
    pub fn sensitive_attributes(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().filter(|(_, a)| a.sensitive).map(|(n, _)| n.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct KindSchema {
    pub description: &'static str,
    pub body: Body,
    /// Objects of this kind live only in kiln's state (like `record`): creating one touches
    /// nothing outside kiln, so an interrupted create leaves nothing to recover and apply need
    /// not make a pending entry durable first.
    pub state_only: bool,
}

impl KindSchema {
    pub fn new(description: &'static str, body: Body) -> Self {
        KindSchema { description, body, state_only: false }
    }

    pub fn state_only(mut self) -> Self {
        self.state_only = true;
        self
    }
}

/// Everything a provider publishes: its configuration block and its kinds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProviderSchema {
    pub config: Body,
    pub kinds: BTreeMap<String, KindSchema>,
    pub data_kinds: BTreeMap<String, KindSchema>,
}
